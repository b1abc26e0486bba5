package main

import (
	"crypto/rand"
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

// certStore builds the listener's certificates: the files given, or a
// fresh self-signed one for localhost, whose fingerprint is printed so a
// client can pin it.
func certStore(cfg *config, log *slog.Logger) (*tlsio.CertStore, error) {
	pairs, err := loadPairs(cfg.certs, cfg.keys)
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %v", err)
		}
		pairs = append(pairs, kp)
		log.Info("no -cert given: using a self-signed certificate for localhost, 127.0.0.1 and ::1",
			"sha256", tlsio.FormatFingerprint(kp.Fingerprint()))
	}
	for _, kp := range pairs {
		log.Info("certificate", "names", kp.Names(), "not_after", kp.Leaf().NotAfter.Format(time.RFC3339),
			"sha256", tlsio.FormatFingerprint(kp.Fingerprint()))
	}
	return tlsio.NewCertStore(pairs...)
}
