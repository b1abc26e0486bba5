package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, errUnimplemented) {
		unimplemented(err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-bogo-shim:", err)
		os.Exit(2)
	}
	if o.handshakerQuery {
		fmt.Println("No")
		return
	}
	if err := run(o); err != nil {
		if errors.Is(err, errUnimplemented) {
			unimplemented(err)
		}
		fmt.Fprintln(os.Stderr, "sluice-bogo-shim:", err)
		os.Exit(1)
	}
}

// unimplemented exits 89. If SLUICE_BOGO_UNIMPLEMENTED names a file, the
// reason is appended to it, so that bogo.sh can list what is missing.
func unimplemented(err error) {
	fmt.Fprintln(os.Stderr, "sluice-bogo-shim:", err)
	if p := os.Getenv("SLUICE_BOGO_UNIMPLEMENTED"); p != "" {
		if f, ferr := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); ferr == nil {
			fmt.Fprintln(f, err)
			f.Close()
		}
	}
	os.Exit(89)
}

// newServer builds the one tlsio.Server shared by every connection of a
// test (resumption tickets are only valid at the Server that issued them).
func newServer(o *options) (*tlsio.Server, error) {
	certPEM, err := os.ReadFile(o.certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(o.keyFile)
	if err != nil {
		return nil, err
	}
	kp, err := tlsio.ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		// Key types sluice does not load (RSA-1024 is fine; others may not be).
		return nil, fmt.Errorf("%w: %v", errUnimplemented, err)
	}
	store, err := tlsio.NewCertStore(kp)
	if err != nil {
		return nil, err
	}
	lo, hi, err := o.versions()
	if err != nil {
		return nil, err
	}
	cfg := tlsio.ServerConfig{
		Certs:                  store,
		MinVersion:             lo,
		MaxVersion:             hi,
		SessionTicketsDisabled: o.noTicket,
		Engine:                 o.engine,
		// The runner offers no ALPN unless a test is about it; a server
		// with nothing to select then sends none, as BoringSSL's shim.
		NextProtos: []string{},
	}
	if o.selectALPN != "" {
		cfg.NextProtos = []string{o.selectALPN}
	}
	return tlsio.NewServer(cfg)
}

func run(o *options) error {
	srv, err := newServer(o)
	if err != nil {
		return err
	}
	id, err := strconv.ParseUint(o.shimID, 10, 64)
	if err != nil && o.shimID != "" {
		return fmt.Errorf("flag -shim-id: %v", err)
	}
	host := "127.0.0.1"
	if o.ipv6 {
		host = "::1"
	}
	for i := 0; i <= o.resumeCount; i++ {
		exp := o.initial
		if i > 0 {
			exp = o.resume
		}
		nc, err := net.Dial("tcp", net.JoinHostPort(host, o.port))
		if err != nil {
			return err
		}
		var idb [8]byte
		binary.LittleEndian.PutUint64(idb[:], id)
		if _, err := nc.Write(idb[:]); err != nil {
			nc.Close()
			return err
		}
		err = serve(nc, srv.NewConn, o, exp, i == 0)
		nc.Close()
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	return nil
}

// serve pumps one connection: socket bytes into Feed, AppendOutput and
// Seal out to the socket, and echoes each plaintext byte XOR 0xff, as the
// runner expects. Conn methods run on this goroutine only; the reader and
// the handshake function run on their own and only post to channels.
func serve(nc net.Conn, newConn func(wake func()) tlsio.Conn, o *options, exp expectations, first bool) error {
	wakec := make(chan struct{}, 1)
	c := newConn(func() {
		select {
		case wakec <- struct{}{}:
		default:
		}
	})
	defer c.Close()
	type chunk struct {
		b   []byte
		err error
	}
	readc := make(chan chunk)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			buf := make([]byte, 16<<10)
			n, err := nc.Read(buf)
			select {
			case readc <- chunk{buf[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var out, plain []byte
	done := false
	flush := func() error {
		out = c.AppendOutput(out[:0])
		if len(out) > 0 {
			_, err := nc.Write(out)
			return err
		}
		return nil
	}
	for {
		select {
		case ch := <-readc:
			if len(ch.b) > 0 {
				c.Feed(time.Now(), ch.b)
			}
			if ch.err != nil {
				c.FeedEOF(time.Now())
			}
		case <-wakec:
		}
		if w := c.HandshakeWork(); w != nil {
			go w()
		}
		if err := flush(); err != nil {
			return err
		}
		if c.Events().Has(tlsio.Fatal) {
			return failed(nc, c)
		}
		if !done && c.Events().Has(tlsio.HandshakeDone) {
			done = true
			if err := check(c.Info(), exp); err != nil {
				return err
			}
			if first && o.shimWritesFirst {
				var err error
				if out, err = c.Seal(out[:0], []byte("hello")); err != nil {
					return err
				}
				if _, err := nc.Write(out); err != nil {
					return err
				}
			}
			if o.shutsDown {
				out, _ = c.CloseNotify(out[:0])
				if _, err := nc.Write(out); err != nil {
					return err
				}
			}
		}
		var rerr error
		plain, rerr = c.ReadPlaintext(plain[:0])
		if len(plain) > 0 && !o.shutsDown {
			for i := range plain {
				plain[i] ^= 0xff
			}
			var err error
			if out, err = c.Seal(out[:0], plain); err != nil {
				return err
			}
			if _, err := nc.Write(out); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return failed(nc, c)
		}
	}
}

// failed sends what is pending (the alert), half-closes and drains the
// socket so the runner reads the alert before a reset, and returns the
// connection's error.
func failed(nc net.Conn, c tlsio.Conn) error {
	if out := c.AppendOutput(nil); len(out) > 0 {
		nc.Write(out)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, tc)
	}
	err := c.Err()
	if err == nil {
		err = errors.New("connection failed")
	}
	return err
}

// check compares the negotiated session with the test's expectations.
func check(in tlsio.Info, e expectations) error {
	switch {
	case e.version != 0 && int(in.Version) != e.version:
		return fmt.Errorf("version %#x, want %#x", in.Version, e.version)
	case e.curve != 0 && int(in.Group) != e.curve:
		return fmt.Errorf("group %d, want %d", in.Group, e.curve)
	case e.alpn != "" && in.ALPN != e.alpn:
		return fmt.Errorf("ALPN %q, want %q", in.ALPN, e.alpn)
	case e.serverName != "" && in.ServerName != e.serverName:
		return fmt.Errorf("server name %q, want %q", in.ServerName, e.serverName)
	case e.sessionMiss && in.Resumed:
		return errors.New("resumed, want a full handshake")
	}
	return nil
}
