package engine

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"testing"
	"time"
)

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

type hashWriter struct{ h hash.Hash }

func (w *hashWriter) Write(b []byte) {
	if w.h == nil {
		w.h = sha256.New()
	}
	w.h.Write(b)
}

func (w *hashWriter) Sum() (s [32]byte) {
	if w.h == nil {
		w.h = sha256.New()
	}
	copy(s[:], w.h.Sum(nil))
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
