package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"
)

// loadPairs reads the -cert/-key files. The error names the flag and file.
func loadPairs(certs, keys []string) ([]*tlsio.KeyPair, error) {
	var pairs []*tlsio.KeyPair
	for i := range certs {
		cb, err := os.ReadFile(certs[i])
		if err != nil {
			return nil, fmt.Errorf("-cert %q: %v", certs[i], err)
		}
		kb, err := os.ReadFile(keys[i])
		if err != nil {
			return nil, fmt.Errorf("-key %q: %v", keys[i], err)
		}
		kp, err := tlsio.ParseKeyPair(cb, kb)
		if err != nil {
			return nil, fmt.Errorf("-cert %q / -key %q: %v", certs[i], keys[i], err)
		}
		pairs = append(pairs, kp)
	}
	return pairs, nil
}

// logCerts names the listener's certificates, with a fingerprint a
// client can pin.
func logCerts(log *slog.Logger, b *built) {
	if b.selfSigned {
		log.Info("no -cert given: using a self-signed certificate for localhost, 127.0.0.1 and ::1",
			"sha256", tlsio.FormatFingerprint(b.pairs[0].Fingerprint()))
	}
	for _, kp := range b.pairs {
		log.Info("certificate", "names", kp.Names(), "not_after", kp.Leaf().NotAfter.Format(time.RFC3339),
			"sha256", tlsio.FormatFingerprint(kp.Fingerprint()))
	}
}
