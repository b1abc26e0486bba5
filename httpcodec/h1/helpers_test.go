package h1_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// browserRequest is a typical Chrome request for a sub-resource: 14 fields.
const browserRequest = "GET /static/app.js?v=3 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"Accept: */*\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=abc123; theme=dark\r\n" +
	"\r\n"

// typicalResponseHead is what a proxy writes back for a static file.
const typicalResponseHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: application/javascript\r\n" +
	"Content-Length: 48213\r\n" +
	"Cache-Control: public, max-age=31536000, immutable\r\n" +
	"Etag: \"5f2b-17a3c\"\r\n" +
	"Last-Modified: Tue, 07 May 2024 10:00:00 GMT\r\n" +
	"Vary: Accept-Encoding\r\n" +
	"Date: Wed, 08 May 2024 12:00:00 GMT\r\n" +
	"\r\n"

// crlf turns "\n" into "\r\n" so tables stay readable.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// summary renders everything a parse decided, for comparisons.
func reqSummary(r *h1.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %v 1.%d body=%v cl=%d close=%v expect=%v upgrade=%v host=%q auth=%q\n",
		r.Method, r.Target, r.Form, r.Minor, r.Body, r.ContentLength, r.Close, r.Expect100, r.Upgrade, r.Host, r.Authority)
	for _, f := range r.Headers.Fields() {
		fmt.Fprintf(&b, "%s=%q\n", f.Name, f.Value)
	}
	return b.String()
}

func respSummary(r *h1.Response) string {
	var b strings.Builder
	fmt.Fprintf(&b, "1.%d %d %q body=%v cl=%d close=%v upgrade=%v\n",
		r.Minor, r.Status, r.Reason, r.Body, r.ContentLength, r.Close, r.Upgrade)
	for _, f := range r.Headers.Fields() {
		fmt.Fprintf(&b, "%s=%q\n", f.Name, f.Value)
	}
	return b.String()
}

// decodeAll runs a BodyDecoder over in until the body is done, returning
// the body, the trailers rendered, and the bytes consumed. eof says whether
// the input ends with the peer closing.
func decodeAll(d *h1.BodyDecoder, in []byte, eof bool) (body []byte, trailers string, n int, err error) {
	for !d.Done() {
		data, k, err := d.Decode(in[n:])
		if errors.Is(err, h1.ErrNeedMore) {
			if eof {
				return body, "", n, d.EOF()
			}
			return body, "", n, err
		}
		if err != nil {
			return body, "", n, err
		}
		if k == 0 && !d.Done() {
			panic("BodyDecoder.Decode made no progress and returned no error")
		}
		body = append(body, data...)
		n += k
	}
	var b strings.Builder
	for _, f := range d.Trailers().Fields() {
		fmt.Fprintf(&b, "%s=%q;", f.Name, f.Value)
	}
	return body, b.String(), n, nil
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(7, 11)) }
