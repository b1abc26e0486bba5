package main

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// accessLog is the -access-log stream: its own writer, buffered
// (diag.LogWriter), its own level (every request line is written whatever
// -log-level says), in the -log-format of the main log. The proxy writes
// the lines with its own encoder (HTTPConfig.AccessLogWriter); log is the
// slog form of the same stream.
type accessLog struct {
	lw   *diag.LogWriter
	file *reopenFile // nil unless it is a file
	log  *slog.Logger
	json bool
}

// openAccessLog opens the stream cfg names; nil for "off" or tcp mode.
func openAccessLog(cfg *config, stdout, stderr io.Writer) (*accessLog, error) {
	if cfg.mode != "http" {
		return nil, nil
	}
	al := &accessLog{}
	var w io.Writer
	switch cfg.accessLog {
	case "off":
		return nil, nil
	case "stdout":
		w = stdout
	case "stderr":
		w = stderr
	default:
		f, err := openReopen(cfg.accessLog)
		if err != nil {
			return nil, err
		}
		al.file, w = f, f
	}
	// 64 KiB holds a few hundred lines: at 40,000 requests a second, one
	// write every 5 ms or so instead of 40,000.
	al.lw = diag.NewLogWriter(w, 64<<10, time.Second)
	al.log = newLoggerAt(cfg, al.lw, slog.LevelInfo)
	al.json = cfg.logFormat == "json"
	return al, nil
}

// reopen starts a new file after rotation (SIGHUP); what was buffered goes
// to the old one first.
func (al *accessLog) reopen() error {
	if al == nil || al.file == nil {
		return nil
	}
	al.lw.Flush()
	return al.file.reopen()
}

// close flushes and closes the stream (on exit).
func (al *accessLog) close() error {
	if al == nil {
		return nil
	}
	err := al.lw.Close()
	if al.file != nil {
		al.file.close()
	}
	return err
}

// reopenFile is a file opened for appending that can be reopened by name.
type reopenFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openReopen(path string) (*reopenFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &reopenFile{path: path, f: f}, nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

func (r *reopenFile) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err // keep writing to the old one
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenFile) close() {
	r.mu.Lock()
	r.f.Close()
	r.mu.Unlock()
}
