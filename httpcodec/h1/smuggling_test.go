package h1_test

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// smugglingCases has one case (at least) per defense listed in doc.go. Each
// input is a whole request, head and body; the error may come from the head
// parser or the body decoder, and each maps to the status a proxy answers
// before closing the connection.
const (
	post        = "POST / HTTP/1.1\r\nHost: a\r\n"
	chunkedHead = post + "Transfer-Encoding: chunked\r\n\r\n"
)

var smugglingCases = []struct {
	name   string
	in     string
	want   *h1.Error
	status int
}{
	// RFC 9112 §6.1 / §6.3: Content-Length with Transfer-Encoding.
	{"CL then TE", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", h1.ErrCLAndTE, 400},
	{"TE then CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", h1.ErrCLAndTE, 400},
	{"CL and TE gzip", post + "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", h1.ErrCLAndTE, 400},
	// RFC 9110 §8.6: differing Content-Length values.
	{"two CL values", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", h1.ErrCLMismatch, 400},
	{"two CL spellings", post + "Content-Length: 5\r\nContent-Length: 05\r\n\r\nhello", h1.ErrCLMismatch, 400},
	{"CL list", post + "Content-Length: 5, 5\r\n\r\nhello", h1.ErrBadContentLength, 400},
	{"CL list differing", post + "Content-Length: 5, 6\r\n\r\nhello", h1.ErrBadContentLength, 400},
	// Content-Length syntax.
	{"CL sign", post + "Content-Length: +5\r\n\r\nhello", h1.ErrBadContentLength, 400},
	{"CL negative", post + "Content-Length: -1\r\n\r\n", h1.ErrBadContentLength, 400},
	{"CL hex", post + "Content-Length: 0x5\r\n\r\nhello", h1.ErrBadContentLength, 400},
	{"CL trailing junk", post + "Content-Length: 5a\r\n\r\nhello", h1.ErrBadContentLength, 400},
	{"CL inner space", post + "Content-Length: 1 2\r\n\r\n", h1.ErrBadContentLength, 400},
	{"CL empty", post + "Content-Length: \r\n\r\n", h1.ErrBadContentLength, 400},
	{"CL overflow", post + "Content-Length: 9223372036854775808\r\n\r\n", h1.ErrBadContentLength, 400},
	{"CL huge", post + "Content-Length: 99999999999999999999999\r\n\r\n", h1.ErrBadContentLength, 400},
	// RFC 9112 §6.3: chunked must be the final coding of a request.
	{"TE gzip", post + "Transfer-Encoding: gzip\r\n\r\n", h1.ErrChunkedNotFinal, 400},
	{"TE chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n", h1.ErrChunkedNotFinal, 400},
	{"TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", h1.ErrChunkedNotFinal, 400},
	{"TE chunked with parameter", post + "Transfer-Encoding: chunked;q=1\r\n\r\n", h1.ErrChunkedNotFinal, 400},
	{"TE identity", post + "Transfer-Encoding: identity\r\n\r\n", h1.ErrChunkedNotFinal, 400},
	{"TE chunked then gzip line", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", h1.ErrChunkedNotFinal, 400},
	// RFC 9112 §6.1: a coding we do not implement before chunked.
	{"TE gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n", h1.ErrUnsupportedTransferCoding, 501},
	{"TE gzip line, chunked line", post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", h1.ErrUnsupportedTransferCoding, 501},
	// RFC 9112 §6.1: chunked only once.
	{"TE chunked, chunked", post + "Transfer-Encoding: chunked, chunked\r\n\r\n", h1.ErrChunkedTwice, 400},
	{"TE two chunked lines", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", h1.ErrChunkedTwice, 400},
	// Transfer-Encoding syntax.
	{"TE empty", post + "Transfer-Encoding: \r\n\r\n", h1.ErrBadTransferEncoding, 400},
	{"TE empty element", post + "Transfer-Encoding: chunked,\r\n\r\n", h1.ErrBadTransferEncoding, 400},
	{"TE leading empty element", post + "Transfer-Encoding: , chunked\r\n\r\n", h1.ErrBadTransferEncoding, 400},
	{"TE non-token", post + "Transfer-Encoding: \"chunked\"\r\n\r\n", h1.ErrBadTransferEncoding, 400},
	{"TE vertical tab", post + "Transfer-Encoding: \x0bchunked\r\n\r\n", h1.ErrBadFieldValue, 400},
	// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0.
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", h1.ErrTransferEncodingHTTP10, 400},
	// RFC 9112 §7.1: chunk-size.
	{"chunk size not hex", chunkedHead + "zz\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size empty", chunkedHead + "\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size negative", chunkedHead + "-1\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size 0x", chunkedHead + "0x5\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size leading space", chunkedHead + " 5\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size trailing space", chunkedHead + "5 \r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size space before ext", chunkedHead + "5 ;a\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkSize, 400},
	{"chunk size overflow 64 bits", chunkedHead + "10000000000000000\r\n", h1.ErrChunkSizeOverflow, 400},
	{"chunk size overflow sign bit", chunkedHead + "8000000000000000\r\n", h1.ErrChunkSizeOverflow, 400},
	{"chunk size 17 digits with zeros", chunkedHead + "00000000000000005\r\nhello\r\n0\r\n\r\n", h1.ErrChunkSizeOverflow, 400},
	{"chunk line too long", chunkedHead + "5;a=" + strings.Repeat("b", 5000) + "\r\nhello\r\n0\r\n\r\n", h1.ErrChunkLineTooLong, 400},
	{"chunk line too long, unterminated", chunkedHead + "5;a=" + strings.Repeat("b", 5000), h1.ErrChunkLineTooLong, 400},
	// RFC 9112 §7.1.1: chunk extensions are validated.
	{"chunk ext empty", chunkedHead + "5;\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkExtension, 400},
	{"chunk ext bad name", chunkedHead + "5;a b\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkExtension, 400},
	{"chunk ext unterminated quote", chunkedHead + "5;a=\"b\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkExtension, 400},
	{"chunk ext NUL", chunkedHead + "5;a=\x00\r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkExtension, 400},
	{"chunk ext trailing space", chunkedHead + "5;a=b \r\nhello\r\n0\r\n\r\n", h1.ErrBadChunkExtension, 400},
	// RFC 9112 §7.1: chunk data is followed by CRLF.
	{"chunk data too long", chunkedHead + "5\r\nhelloX\r\n0\r\n\r\n", h1.ErrBadChunkTerminator, 400},
	// RFC 9112 §2.2: bare LF and bare CR.
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", h1.ErrBareLF, 400},
	{"bare LF field", "GET / HTTP/1.1\r\nHost: a\n\r\n", h1.ErrBareLF, 400},
	{"bare LF end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n", h1.ErrBareLF, 400},
	{"bare LF chunk line", chunkedHead + "5\nhello\r\n0\r\n\r\n", h1.ErrBareLF, 400},
	{"bare LF after chunk data", chunkedHead + "5\r\nhello\n0\r\n\r\n", h1.ErrBareLF, 400},
	{"bare LF last chunk", chunkedHead + "0\n\r\n", h1.ErrBareLF, 400},
	{"bare LF trailer", chunkedHead + "0\r\nT: 1\n\r\n", h1.ErrBareLF, 400},
	{"bare LF end of trailers", chunkedHead + "0\r\n\n", h1.ErrBareLF, 400},
	{"bare CR request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBareCR, 400},
	{"bare CR field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", h1.ErrBareCR, 400},
	{"bare CR field name", "GET / HTTP/1.1\r\nHost: a\r\nX\r: a\r\n\r\n", h1.ErrBareCR, 400},
	{"bare CR line start", "GET / HTTP/1.1\r\nHost: a\r\n\rX: a\r\n\r\n", h1.ErrBareCR, 400},
	{"bare CR chunk line", chunkedHead + "5\r\r\nhello\r\n0\r\n\r\n", h1.ErrBareCR, 400},
	{"bare CR after chunk data", chunkedHead + "5\r\nhello\rX0\r\n\r\n", h1.ErrBareCR, 400},
	{"bare CR trailer", chunkedHead + "0\r\nT: a\rb\r\n\r\n", h1.ErrBareCR, 400},
	// RFC 9112 §5.2: obs-fold; §2.2 whitespace after the start line.
	{"obs-fold SP", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", h1.ErrObsFold, 400},
	{"obs-fold HTAB", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", h1.ErrObsFold, 400},
	{"obs-fold of Transfer-Encoding", post + "Transfer-Encoding:\r\n chunked\r\n\r\n", h1.ErrObsFold, 400},
	{"obs-fold in trailer", chunkedHead + "0\r\nT: a\r\n b\r\n\r\n", h1.ErrObsFold, 400},
	{"whitespace after start line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", h1.ErrWhitespaceAfterStart, 400},
	// RFC 9112 §5.1: whitespace between field name and colon.
	{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", h1.ErrSpaceBeforeColon, 400},
	{"tab before colon", post + "Transfer-Encoding\t: chunked\r\n\r\n", h1.ErrSpaceBeforeColon, 400},
	{"space before colon, CL", post + "Content-Length : 5\r\n\r\nhello", h1.ErrSpaceBeforeColon, 400},
	// RFC 9110 §5.1: field names are tokens.
	{"name with paren", "GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", h1.ErrBadFieldName, 400},
	{"name with NUL", "GET / HTTP/1.1\r\nHost: a\r\nX\x00y: 1\r\n\r\n", h1.ErrBadFieldName, 400},
	{"name with non-ASCII", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: 1\r\n\r\n", h1.ErrBadFieldName, 400},
	{"name with slash", "GET / HTTP/1.1\r\nHost: a\r\nX/y: 1\r\n\r\n", h1.ErrBadFieldName, 400},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", h1.ErrBadFieldName, 400},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nJunk\r\n\r\n", h1.ErrMissingColon, 400},
	// RFC 9110 §5.5: no NUL or other CTL but HTAB in field values.
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", h1.ErrBadFieldValue, 400},
	{"SOH in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", h1.ErrBadFieldValue, 400},
	{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", h1.ErrBadFieldValue, 400},
	{"ESC in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n", h1.ErrBadFieldValue, 400},
	{"NUL in trailer", chunkedHead + "0\r\nT: \x00\r\n\r\n", h1.ErrBadFieldValue, 400},
	// RFC 9112 §3: request line.
	{"method non-token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadMethod, 400},
	{"method leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadMethod, 400},
	{"method tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadMethod, 400},
	{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadRequestLine, 400},
	{"no version", "GET /\r\nHost: a\r\n\r\n", h1.ErrBadRequestLine, 400},
	{"empty request line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadRequestLine, 400},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", h1.ErrUnsupportedVersion, 505},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", h1.ErrUnsupportedVersion, 505},
	{"HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", h1.ErrBadVersion, 400},
	{"HTTP/x.1", "GET / HTTP/x.1\r\nHost: a\r\n\r\n", h1.ErrBadVersion, 400},
	{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", h1.ErrBadVersion, 400},
	{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", h1.ErrBadVersion, 400},
	{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadVersion, 400},
	// RFC 9112 §3.2: request-target.
	{"target CTL", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"target non-ASCII", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"target bad pct", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"target short pct", "GET /a% HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"target fragment", "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"target backslash", "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"target quote", "GET /\"x\" HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"asterisk not OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"authority-form not CONNECT", "GET a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"CONNECT no port", "CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"CONNECT port too big", "CONNECT a.example:65536 HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"absolute userinfo", "GET http://u@a.example/ HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"absolute empty host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"absolute other scheme", "GET ftp://a.example/ HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"absolute empty port", "GET http://a.example:/ HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	{"absolute bad IPv6", "GET http://[::g]/ HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrBadTarget, 400},
	// RFC 9112 §3.2: Host.
	{"missing Host", "GET / HTTP/1.1\r\n\r\n", h1.ErrMissingHost, 400},
	{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", h1.ErrMultipleHost, 400},
	{"two identical Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", h1.ErrMultipleHost, 400},
	{"two Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", h1.ErrMultipleHost, 400},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", h1.ErrBadHost, 400},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", h1.ErrBadHost, 400},
	{"Host with bad port", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", h1.ErrBadHost, 400},
	{"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", h1.ErrBadHost, 400},
	// RFC 9110 §6.5.1: framing fields are never trailers.
	{"Trailer names Content-Length", post + "Trailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", h1.ErrBadTrailerField, 400},
	{"Content-Length as a trailer", chunkedHead + "0\r\nContent-Length: 5\r\n\r\n", h1.ErrBadTrailerField, 400},
	{"Transfer-Encoding as a trailer", chunkedHead + "0\r\nTransfer-Encoding: chunked\r\n\r\n", h1.ErrBadTrailerField, 400},
	{"space before colon in trailer", chunkedHead + "0\r\nT : 1\r\n\r\n", h1.ErrSpaceBeforeColon, 400},
}

func TestSmuggling(t *testing.T) {
	for _, tt := range smugglingCases {
		t.Run(tt.name, func(t *testing.T) {
			var reasons []string
			cfg := h1.Config{CountError: func(r string) { reasons = append(reasons, r) }}
			p := h1.Parser{Config: cfg}
			var r h1.Request
			in := []byte(tt.in)
			n, err := p.ParseRequest(&r, in)
			if err == nil {
				d := h1.BodyDecoder{Config: cfg}
				d.ForRequest(&r)
				_, _, _, err = decodeAll(&d, in[n:], true)
			}
			if err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := h1.StatusFor(err); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
			if len(reasons) != 1 || reasons[0] != tt.want.Reason {
				t.Errorf("CountError saw %v, want [%s]", reasons, tt.want.Reason)
			}
		})
	}
}
