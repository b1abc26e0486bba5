package tlsio

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

var (
	fuzzSrvOnce    sync.Once
	fuzzSrv        *Server
	fuzzNativeOnce sync.Once
	fuzzNative     *Server // the native engine's, for FuzzFeedEstablished
)

func fuzzServer(t testing.TB) *Server {
	fuzzSrvOnce.Do(func() { fuzzSrv = newTestServer(t, ServerConfig{}) })
	return fuzzSrv
}

// recordClientHello returns the first flight of a crypto/tls client.
func recordClientHello(t testing.TB, cfg *tls.Config) []byte {
	cc := newClientConn(nil)
	cli := tls.Client(cc, cfg)
	go cli.Handshake()
	first := <-cc.toServer
	cc.Close()
	return first
}

// recordedHellos are real ClientHellos in several shapes, and a resuming
// one (with a PSK) taken after a full session through the harness.
func recordedHellos(t testing.TB) [][]byte {
	localPair(t)
	var out [][]byte
	c13 := clientConfig(tls.VersionTLS13)
	c12 := clientConfig(tls.VersionTLS12)
	both := clientConfig(tls.VersionTLS13)
	both.MinVersion = tls.VersionTLS12
	noSNI := both.Clone()
	noSNI.ServerName, noSNI.InsecureSkipVerify, noSNI.NextProtos = "", true, nil
	classic := c13.Clone()
	classic.CurvePreferences = []tls.CurveID{tls.X25519}
	for _, cfg := range []*tls.Config{c13, c12, both, noSNI, classic} {
		out = append(out, recordClientHello(t, cfg))
	}
	if tt, ok := t.(*testing.T); ok {
		res := c13.Clone()
		res.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		h := newHarness(tt, fuzzServer(t), res, nil)
		h.handshake()
		h.seal("x")
		h.clientRead(1)
		out = append(out, recordClientHello(t, res))
	}
	return out
}

// FuzzFeed feeds arbitrary bytes to a fresh Conn, as a client would before
// and during the handshake, then EOF. It must never panic or hang, and the
// outcome must be consistent.
func FuzzFeed(f *testing.F) {
	for _, ch := range recordedHellos(f) {
		f.Add(uint8(0), ch)
		f.Add(uint8(7), ch)
		f.Add(uint8(0), ch[:len(ch)/2])                            // truncated ClientHello
		f.Add(uint8(0), ch[:recordHeaderLen+10])                   // truncated body
		f.Add(uint8(0), slices.Concat(ch, ch))                     // two ClientHellos
		f.Add(uint8(3), slices.Concat(ch, []byte{23, 3, 3, 0, 1})) // app data before Finished
		big := append([]byte(nil), ch...)
		big[3], big[4] = 0x40, 0x01 // oversized first record
		f.Add(uint8(0), big)
		// The ClientHello split into two records.
		body := ch[recordHeaderLen:]
		n := len(body) - 10
		f.Add(uint8(0), slices.Concat([]byte{22, 3, 1, 0, 10}, body[:10], []byte{22, 3, 1, byte(n >> 8), byte(n)}, body[10:]))
	}
	f.Add(uint8(0), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add(uint8(1), []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add(uint8(0), []byte{0x80, 0x2e, 0x01, 0x03, 0x01})
	f.Add(uint8(0), []byte{22, 3, 1, 0, 0})
	f.Add(uint8(0), []byte{21, 3, 1, 0, 2, 2, 40})
	f.Add(uint8(0), []byte{22, 3, 3, 0, 4, 1, 0, 0, 0})
	f.Add(uint8(0), []byte{})

	f.Fuzz(func(t *testing.T, frag uint8, data []byte) {
		srv := fuzzServer(t)
		wake := make(chan struct{}, 1)
		c := srv.NewConn(func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		defer c.Close()
		exited := make(chan struct{})
		started := false
		step := 1 + int(frag)*37
		var out []byte
		var feedErr error
		for len(data) > 0 {
			n := min(step, len(data))
			if err := c.Feed(time.Now(), data[:n]); err != nil && feedErr == nil {
				feedErr = err
			}
			data = data[n:]
			if w := c.HandshakeWork(); w != nil {
				started = true
				go func() { defer close(exited); w() }()
			}
			out = c.AppendOutput(out)
		}
		c.FeedEOF(time.Now())
		if started {
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Fatal("handshake function did not return after EOF")
			}
		}
		out = c.AppendOutput(out)
		pt, rerr := c.ReadPlaintext(nil)
		ev, err := c.Events(), c.Err()
		if len(pt) != 0 {
			t.Fatalf("plaintext %q without a handshake", pt)
		}
		if c.State() != Closed || !ev.Has(Fatal) || err == nil || rerr != err {
			t.Fatalf("state %v events %v err %v read %v", c.State(), ev, err, rerr)
		}
		if feedErr != nil && feedErr != err {
			t.Fatalf("Feed returned %v, Err %v", feedErr, err)
		}
		var te *Error
		if !errors.As(err, &te) || te.Reason == "" {
			t.Fatalf("untyped error %v", err)
		}
		if _, serr := c.Seal(nil, []byte("x")); serr == nil {
			t.Fatal("Seal worked on a failed conn")
		}
		if errors.Is(err, ErrNotTLS) && len(out) != 0 {
			t.Fatalf("output %x for plaintext HTTP", out)
		}
	})
}

// fuzzEstablish returns an established Conn driven by the caller from now
// on (the harness loop is stopped) and its client.
func fuzzEstablish(t *testing.T, version uint16, native bool) (Conn, *tls.Conn, *clientConn) {
	srv := fuzzServer(t) // also creates the default pair clientConfig trusts
	if native {
		fuzzNativeOnce.Do(func() { fuzzNative = nativeServer(t, ServerConfig{}) })
		srv = fuzzNative
	}
	cfg := clientConfig(version)
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	h := newHarness(t, srv, cfg, nil)
	h.handshake()
	close(h.stop)
	<-h.done
	return h.conn, h.client, h.cc
}

// FuzzFeedEstablished runs a script of client writes, corruptions, raw
// bytes, splits, Seal, EOF and close_notify against an established Conn.
// Without corruption, what the client wrote must come out intact. The
// first byte picks the version (bit 0) and the engine (bit 1: native, whose
// record layer decrypts in place).
func FuzzFeedEstablished(f *testing.F) {
	f.Add([]byte{0, 0, 50, 2, 3, 7})
	f.Add([]byte{1, 0, 200, 0, 100, 2, 10, 2, 255, 4, 20, 7})
	f.Add([]byte{0, 0, 10, 1, 5, 2, 255, 7})
	f.Add([]byte{1, 3, 5, 23, 3, 3, 0x48, 0x01, 7})
	f.Add([]byte{0, 0, 10, 2, 4, 5, 7})
	f.Add([]byte{1, 0, 10, 6, 0, 10, 2, 255, 7})
	f.Add([]byte{0, 3, 5, 21, 3, 3, 0, 2, 7})
	f.Add([]byte{3, 0, 50, 2, 3, 7})
	f.Add([]byte{3, 0, 200, 0, 100, 2, 10, 2, 255, 4, 20, 7})
	f.Add([]byte{3, 0, 10, 1, 5, 2, 255, 7})
	f.Add([]byte{3, 3, 5, 23, 3, 3, 0x48, 0x01, 7})
	f.Add([]byte{3, 0, 10, 6, 0, 10, 2, 255, 7})
	f.Add([]byte{2, 0, 10, 2, 4, 5, 7})
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) == 0 || len(script) > 64 {
			return
		}
		version := uint16(tls.VersionTLS12)
		if script[0]&1 == 1 {
			version = tls.VersionTLS13
		}
		c, cli, cc := fuzzEstablish(t, version, script[0]&2 != 0)
		next := func() int {
			if len(script) == 0 {
				return 0
			}
			b := script[0]
			script = script[1:]
			return int(b)
		}
		script = script[1:]
		var pending, wrote, got []byte
		clean, eofFed := true, false
		for len(script) > 0 {
			switch next() % 8 {
			case 0: // the client writes n bytes
				msg := bytes.Repeat([]byte{byte(len(wrote))}, 1+next()*64)
				cli.Write(msg)
				for len(cc.toServer) > 0 {
					pending = append(pending, <-cc.toServer...)
				}
				wrote = append(wrote, msg...)
			case 1: // corrupt a pending byte
				if len(pending) > 0 {
					pending[next()%len(pending)] ^= 0x5a
					clean = false
				}
			case 2: // feed part of what is pending
				n := min(len(pending), 1+next()*8)
				c.Feed(time.Now(), pending[:n])
				pending = pending[n:]
			case 3: // feed raw bytes from the script
				k := next()
				n := min(len(script), k)
				c.Feed(time.Now(), script[:n])
				script = script[n:]
				if n > 0 {
					clean = false
				}
			case 4: // seal
				_, err := c.Seal(nil, make([]byte, next()*100))
				if (err == nil) == c.Events().Has(Fatal) && !c.Events().Has(CloseNotifySent) {
					t.Fatalf("Seal err %v with events %v", err, c.Events())
				}
			case 5:
				c.FeedEOF(time.Now())
				eofFed = true
			case 6:
				c.CloseNotify(nil)
			case 7:
				got, _ = c.ReadPlaintext(got)
				c.AppendOutput(nil)
			}
		}
		c.Feed(time.Now(), pending)
		got, rerr := c.ReadPlaintext(got)
		ev, err := c.Events(), c.Err()
		if ev.Has(Fatal) != (err != nil) {
			t.Fatalf("events %v err %v", ev, err)
		}
		if clean && !eofFed && !bytes.Equal(got, wrote) {
			t.Fatalf("got %d bytes, client wrote %d", len(got), len(wrote))
		}
		if clean && !eofFed && (err != nil || rerr != nil) {
			t.Fatalf("clean script failed: %v %v", err, rerr)
		}
		if !clean && !bytes.HasPrefix(wrote, got) && err == nil {
			// Corruption may fail the conn, never forge plaintext.
			t.Fatalf("plaintext not written by the client: %q", got)
		}
		if rerr != nil && rerr != io.EOF && rerr != err {
			t.Fatalf("ReadPlaintext %v, Err %v", rerr, err)
		}
		c.Close()
	})
}
