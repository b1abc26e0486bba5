package testutil

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var portsGiven sync.Map

// FreePort returns a loopback address nothing listens on now. The kernel
// may offer a port it just freed again, so a port is never handed out
// twice in one process.
func FreePort(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := portsGiven.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// Certs are PEM files: a CA and a leaf it signed for localhost and
// 127.0.0.1 (rustls/webpki wants a real chain: a self-signed leaf as its
// own anchor is refused).
type Certs struct {
	CA, Cert, Key string
}

// WriteCerts writes a fresh CA and leaf into dir.
func WriteCerts(t testing.TB, dir string) Certs {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caT := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafT := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := Certs{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "leaf.pem"), Key: filepath.Join(dir, "leaf.key")}
	for path, b := range map[string]*pem.Block{
		c.CA:   {Type: "CERTIFICATE", Bytes: caDER},
		c.Cert: {Type: "CERTIFICATE", Bytes: leafDER},
		c.Key:  {Type: "PRIVATE KEY", Bytes: kDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// BuildSluice builds ./cmd/sluice (found from the module root above the
// working directory) into dir and returns the binary's path. go test
// caches a package's result by the files its test process opened while
// tests ran (not in TestMain before m.Run): a test using the binary calls
// ConsultModule, or a change to sluice would leave a stale cached pass.
func BuildSluice(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sluice")
	args := []string{"build", "-o", bin}
	if buildTags != "" {
		// A test binary built with -tags tlsnative tests a sluice built
		// the same way (native TLS by default).
		args = append(args, "-tags", buildTags)
	}
	cmd := exec.Command("go", append(args, "./cmd/sluice")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building sluice: %v\n%s", err, out)
	}
	return bin, nil
}

// SluiceBinary is BuildSluice for a test or benchmark that fails if the
// build does, with ConsultModule done.
func SluiceBinary(tb testing.TB, dir string) string {
	tb.Helper()
	bin, err := BuildSluice(dir)
	if err == nil {
		err = ConsultModule()
	}
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// ConsultTree opens every file under root whose name ends in one of
// suffixes, so go test's cache knows the result depends on them.
func ConsultTree(root string, suffixes ...string) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "target" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		for _, s := range suffixes {
			if strings.HasSuffix(path, s) {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				f.Close()
				return nil
			}
		}
		return nil
	})
}

// ConsultModule opens the module's Go sources, go.mod and go.sum (see
// BuildSluice).
func ConsultModule() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	return ConsultTree(root, ".go", "go.mod", "go.sum")
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

// Proc is a child process whose stdout and stderr lines are kept.
type Proc struct {
	Name string
	Cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string // stdout and stderr, interleaved as read
	stdout  []string
	stderr  []string
	changed chan struct{} // closed and replaced on every new line
	done    chan struct{}
	waitErr error
}

// Start runs name with args; it is killed at cleanup if still running.
func Start(t testing.TB, name string, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), changed: make(chan struct{}), done: make(chan struct{})}
	so, err := p.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	se, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go p.scan(so, true, &readers)
	go p.scan(se, false, &readers)
	go func() {
		readers.Wait()
		err := p.Cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit after SIGKILL", name)
		}
	})
	return p
}

func (p *Proc) scan(r io.Reader, stdout bool, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		if stdout {
			p.stdout = append(p.stdout, sc.Text())
		} else {
			p.stderr = append(p.stderr, sc.Text())
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// Output is every line so far, stdout and stderr.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Stdout is the stdout lines so far.
func (p *Proc) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...)
}

// Stderr is the stderr lines so far, each ended by a newline.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.stderr {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// WaitLine waits for a stdout or stderr line containing s and returns it.
func (p *Proc) WaitLine(t testing.TB, s string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				p.mu.Unlock()
				return l
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.done:
			// A last look: the line may have come with the exit.
			p.mu.Lock()
			for _, l := range p.lines {
				if strings.Contains(l, s) {
					p.mu.Unlock()
					return l
				}
			}
			p.mu.Unlock()
			t.Fatalf("%s exited (%v) without printing %q:\n%s", p.Name, p.waitErr, s, p.Output())
		case <-deadline:
			t.Fatalf("%s did not print %q within %v:\n%s", p.Name, s, d, p.Output())
		}
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.Name, sig, err)
	}
}

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Proc) Wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %v:\n%s", p.Name, d, p.Output())
	}
	p.mu.Lock()
	err := p.waitErr
	p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return 0
}

// Sluice is a running sluice binary.
type Sluice struct {
	*Proc
	Addr, Admin string
}

// StartSluice runs bin on a fresh -listen and -admin port with args and
// waits until it serves.
func StartSluice(t testing.TB, bin string, args ...string) *Sluice {
	t.Helper()
	s := &Sluice{Addr: FreePort(t), Admin: FreePort(t)}
	args = append([]string{"-listen", s.Addr, "-admin", s.Admin}, args...)
	s.Proc = Start(t, "sluice", bin, args...)
	s.WaitLine(t, "sluice serving", 15*time.Second)
	return s
}
