package tlsio

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"reflect"
)

// Reasons passed to ServerConfig.CountError and stored in Error.Reason.
// The set is small and fixed so that it can label a metric.
const (
	// ReasonNotTLS: the first bytes were not a TLS handshake record
	// (plaintext HTTP, SSLv2, garbage).
	ReasonNotTLS = "not_tls"
	// ReasonBadRecord: a record after the handshake failed to parse or
	// decrypt, or carried an unexpected message.
	ReasonBadRecord = "bad_record"
	// ReasonHandshake: the handshake failed on our side (no shared version,
	// cipher, group or protocol, malformed messages, bad Finished ...).
	ReasonHandshake = "handshake_error"
	// ReasonHandshakeEOF: the transport ended before the handshake completed.
	ReasonHandshakeEOF = "handshake_eof"
	// ReasonPeerAlert: the peer sent a fatal alert.
	ReasonPeerAlert = "peer_alert"
	// ReasonTruncated: the transport ended in the middle of a record.
	ReasonTruncated = "truncated"
	// ReasonCertificate: (client) the peer's certificate did not verify:
	// unknown authority, wrong name, expired.
	ReasonCertificate = "bad_certificate"
)

// Sentinel errors. Conn methods return them directly or wrapped in an *Error;
// test with errors.Is.
var (
	// ErrNotTLS means the peer spoke plaintext HTTP to a TLS port. No alert
	// is queued, so the caller may answer with a plaintext 400.
	ErrNotTLS = errors.New("tlsio: plaintext HTTP sent to a TLS port")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("tlsio: connection closed")
	// ErrHandshaking is returned by Seal before the handshake has completed.
	ErrHandshaking = errors.New("tlsio: handshake not complete")
	// ErrWriteClosed is returned by Seal after CloseNotify.
	ErrWriteClosed = errors.New("tlsio: close_notify already sent")
	// errBadFirstRecord is the cause of a ReasonNotTLS error that is not HTTP.
	errBadFirstRecord = errors.New("tlsio: first record is not a TLS handshake")
)

// Error is the terminal error of a Conn. It is sticky: once set, Err returns
// it and Feed, Seal and ReadPlaintext return it too.
type Error struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Local is true when this side detected the problem (and sent any
	// alert), false when the peer reported it with an alert.
	Local bool
	// HasAlert reports whether Alert holds the alert that was sent (Local)
	// or received (!Local). A locally detected error may have sent an alert
	// whose code crypto/tls does not expose (an encrypted one); then
	// HasAlert is false although AppendOutput returned the alert record.
	HasAlert bool
	// Alert is the alert description; meaningful only if HasAlert.
	Alert Alert
	// Err is the underlying cause, e.g. ErrNotTLS, io.ErrUnexpectedEOF or
	// the error crypto/tls returned.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	s := "tlsio: " + e.Reason
	if e.HasAlert {
		if e.Local {
			s += ": sent alert " + e.Alert.String()
		} else {
			s += ": received alert " + e.Alert.String()
		}
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// tlsAlert extracts the alert from an error crypto/tls built with
// &net.OpError{Op: "local error"|"remote error", Err: alert(x)}. The alert
// type is unexported; it is a uint8 declared in crypto/tls, which reflect
// can read without depending on its name. TestPinAlertErrorShape fails if
// crypto/tls changes this.
func tlsAlert(err error) (a Alert, remote, ok bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Err == nil {
		return 0, false, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 || v.Type().PkgPath() != "crypto/tls" {
		return 0, false, false
	}
	switch op.Op {
	case "remote error":
		return Alert(v.Uint()), true, true
	case "local error":
		return Alert(v.Uint()), false, true
	}
	return 0, false, false
}

// classify turns an error from crypto/tls into an *Error. lastAlert is a
// plaintext alert seen in our own output, used when the error does not say
// which alert went out.
func classify(err error, handshaking bool, lastAlert Alert, sawAlert bool) *Error {
	e := &Error{Err: err, Local: true}
	if a, remote, ok := tlsAlert(err); ok {
		e.Alert, e.HasAlert, e.Local = a, true, !remote
	} else if sawAlert {
		e.Alert, e.HasAlert = lastAlert, true
	}
	var rhe tls.RecordHeaderError
	if !e.HasAlert && !handshaking && errors.As(err, &rhe) {
		// After the handshake crypto/tls rejects a record header for two
		// reasons, each with an alert it sends encrypted and does not
		// report: a version other than 0x0303 (checked first), or a length
		// over the ciphertext limit.
		e.HasAlert = true
		if rhe.RecordHeader[1] != 3 || rhe.RecordHeader[2] != 3 {
			e.Alert = AlertProtocolVersion
		} else {
			e.Alert = AlertRecordOverflow
		}
	}
	var cve *tls.CertificateVerificationError
	switch {
	case !e.Local:
		e.Reason = ReasonPeerAlert
	case handshaking && errors.As(err, &cve):
		e.Reason = ReasonCertificate
	case handshaking && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		e.Reason = ReasonHandshakeEOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		e.Reason = ReasonTruncated
	case handshaking && errors.As(err, &rhe) && !e.HasAlert:
		e.Reason = ReasonNotTLS
	case handshaking:
		e.Reason = ReasonHandshake
	default:
		e.Reason = ReasonBadRecord
	}
	return e
}
