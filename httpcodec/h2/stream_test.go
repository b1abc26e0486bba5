package h2

import "testing"

// TestStreamTransitions walks every arrow of the RFC 9113 §5.1 diagram and
// every frame with no arrow, checking the resulting state or error.
func TestStreamTransitions(t *testing.T) {
	type op func(m *streamSM) *stateError
	recvH := func(es bool) op { return func(m *streamSM) *stateError { return m.recvHeaders(es) } }
	sendH := func(es bool) op { return func(m *streamSM) *stateError { return m.sendHeaders(es) } }
	recvD := func(es bool) op { return func(m *streamSM) *stateError { return m.recvData(es) } }
	sendD := func(es bool) op { return func(m *streamSM) *stateError { return m.sendData(es) } }
	recvR := func(m *streamSM) *stateError { return m.recvReset() }
	sendR := func(m *streamSM) *stateError { return m.sendReset() }
	recvPP := func(m *streamSM) *stateError { return m.recvPushPromise() }
	sendPP := func(m *streamSM) *stateError { return m.sendPushPromise() }
	recvWU := func(m *streamSM) *stateError { return m.recvWindowUpdate() }

	const (
		ok = iota
		connErr
		streamErr
		ignored
		local
	)
	tests := []struct {
		name      string
		from      streamSM
		op        op
		outcome   int
		code      ErrCode
		wantState streamState
		wantCause closeCause
	}{
		// idle
		{"idle recv H", streamSM{}, recvH(false), ok, 0, stateOpen, 0},
		{"idle recv H+ES", streamSM{}, recvH(true), ok, 0, stateHalfClosedRemote, 0},
		{"idle send H", streamSM{}, sendH(false), ok, 0, stateOpen, 0},
		{"idle send H+ES", streamSM{}, sendH(true), ok, 0, stateHalfClosedLocal, 0},
		{"idle recv PP", streamSM{}, recvPP, ok, 0, stateReservedRemote, 0},
		{"idle send PP", streamSM{}, sendPP, ok, 0, stateReservedLocal, 0},
		{"idle recv DATA", streamSM{}, recvD(false), connErr, ErrCodeProtocol, stateIdle, 0},
		{"idle recv RST", streamSM{}, recvR, connErr, ErrCodeProtocol, stateIdle, 0},
		{"idle recv WU", streamSM{}, recvWU, connErr, ErrCodeProtocol, stateIdle, 0},
		{"idle send RST", streamSM{}, sendR, local, 0, stateIdle, 0},
		{"idle send DATA", streamSM{}, sendD(false), local, 0, stateIdle, 0},
		// reserved (local)
		{"reserved-local send H", streamSM{state: stateReservedLocal}, sendH(false), ok, 0, stateHalfClosedRemote, 0},
		{"reserved-local send H+ES", streamSM{state: stateReservedLocal}, sendH(true), ok, 0, stateClosed, causeEndStream},
		{"reserved-local recv R", streamSM{state: stateReservedLocal}, recvR, ok, 0, stateClosed, causePeerReset},
		{"reserved-local send R", streamSM{state: stateReservedLocal}, sendR, ok, 0, stateClosed, causeLocalReset},
		{"reserved-local recv WU", streamSM{state: stateReservedLocal}, recvWU, ok, 0, stateReservedLocal, 0},
		{"reserved-local recv H", streamSM{state: stateReservedLocal}, recvH(false), connErr, ErrCodeProtocol, stateReservedLocal, 0},
		{"reserved-local recv DATA", streamSM{state: stateReservedLocal}, recvD(false), connErr, ErrCodeProtocol, stateReservedLocal, 0},
		// reserved (remote)
		{"reserved-remote recv H", streamSM{state: stateReservedRemote}, recvH(false), ok, 0, stateHalfClosedLocal, 0},
		{"reserved-remote recv H+ES", streamSM{state: stateReservedRemote}, recvH(true), ok, 0, stateClosed, causeEndStream},
		{"reserved-remote recv R", streamSM{state: stateReservedRemote}, recvR, ok, 0, stateClosed, causePeerReset},
		{"reserved-remote send R", streamSM{state: stateReservedRemote}, sendR, ok, 0, stateClosed, causeLocalReset},
		{"reserved-remote recv DATA", streamSM{state: stateReservedRemote}, recvD(false), connErr, ErrCodeProtocol, stateReservedRemote, 0},
		{"reserved-remote recv WU", streamSM{state: stateReservedRemote}, recvWU, connErr, ErrCodeProtocol, stateReservedRemote, 0},
		{"reserved-remote send H", streamSM{state: stateReservedRemote}, sendH(false), local, 0, stateReservedRemote, 0},
		// open
		{"open recv DATA", streamSM{state: stateOpen}, recvD(false), ok, 0, stateOpen, 0},
		{"open recv ES", streamSM{state: stateOpen}, recvD(true), ok, 0, stateHalfClosedRemote, 0},
		{"open recv H+ES", streamSM{state: stateOpen}, recvH(true), ok, 0, stateHalfClosedRemote, 0},
		{"open send ES", streamSM{state: stateOpen}, sendD(true), ok, 0, stateHalfClosedLocal, 0},
		{"open send H+ES", streamSM{state: stateOpen}, sendH(true), ok, 0, stateHalfClosedLocal, 0},
		{"open recv R", streamSM{state: stateOpen}, recvR, ok, 0, stateClosed, causePeerReset},
		{"open send R", streamSM{state: stateOpen}, sendR, ok, 0, stateClosed, causeLocalReset},
		{"open recv PP", streamSM{state: stateOpen}, recvPP, connErr, ErrCodeProtocol, stateOpen, 0},
		// half-closed (local)
		{"hcl recv DATA", streamSM{state: stateHalfClosedLocal}, recvD(false), ok, 0, stateHalfClosedLocal, 0},
		{"hcl recv ES", streamSM{state: stateHalfClosedLocal}, recvD(true), ok, 0, stateClosed, causeEndStream},
		{"hcl recv H+ES", streamSM{state: stateHalfClosedLocal}, recvH(true), ok, 0, stateClosed, causeEndStream},
		{"hcl recv R", streamSM{state: stateHalfClosedLocal}, recvR, ok, 0, stateClosed, causePeerReset},
		{"hcl send R", streamSM{state: stateHalfClosedLocal}, sendR, ok, 0, stateClosed, causeLocalReset},
		{"hcl recv WU", streamSM{state: stateHalfClosedLocal}, recvWU, ok, 0, stateHalfClosedLocal, 0},
		{"hcl send DATA", streamSM{state: stateHalfClosedLocal}, sendD(false), local, 0, stateHalfClosedLocal, 0},
		{"hcl send H", streamSM{state: stateHalfClosedLocal}, sendH(false), local, 0, stateHalfClosedLocal, 0},
		// half-closed (remote)
		{"hcr send DATA", streamSM{state: stateHalfClosedRemote}, sendD(false), ok, 0, stateHalfClosedRemote, 0},
		{"hcr send ES", streamSM{state: stateHalfClosedRemote}, sendD(true), ok, 0, stateClosed, causeEndStream},
		{"hcr send H+ES", streamSM{state: stateHalfClosedRemote}, sendH(true), ok, 0, stateClosed, causeEndStream},
		{"hcr recv R", streamSM{state: stateHalfClosedRemote}, recvR, ok, 0, stateClosed, causePeerReset},
		{"hcr send R", streamSM{state: stateHalfClosedRemote}, sendR, ok, 0, stateClosed, causeLocalReset},
		{"hcr recv WU", streamSM{state: stateHalfClosedRemote}, recvWU, ok, 0, stateHalfClosedRemote, 0},
		{"hcr recv DATA", streamSM{state: stateHalfClosedRemote}, recvD(false), streamErr, ErrCodeStreamClosed, stateHalfClosedRemote, 0},
		{"hcr recv H", streamSM{state: stateHalfClosedRemote}, recvH(true), streamErr, ErrCodeStreamClosed, stateHalfClosedRemote, 0},
		// closed, by cause
		{"closed(local RST) recv DATA", streamSM{stateClosed, causeLocalReset}, recvD(false), ignored, 0, stateClosed, causeLocalReset},
		{"closed(local RST) recv H", streamSM{stateClosed, causeLocalReset}, recvH(false), ignored, 0, stateClosed, causeLocalReset},
		{"closed(local RST) recv WU", streamSM{stateClosed, causeLocalReset}, recvWU, ignored, 0, stateClosed, causeLocalReset},
		{"closed(local RST) recv R", streamSM{stateClosed, causeLocalReset}, recvR, ignored, 0, stateClosed, causeLocalReset},
		{"closed(peer RST) recv DATA", streamSM{stateClosed, causePeerReset}, recvD(false), streamErr, ErrCodeStreamClosed, stateClosed, causePeerReset},
		{"closed(peer RST) recv WU", streamSM{stateClosed, causePeerReset}, recvWU, streamErr, ErrCodeStreamClosed, stateClosed, causePeerReset},
		{"closed(ES) recv DATA", streamSM{stateClosed, causeEndStream}, recvD(false), connErr, ErrCodeStreamClosed, stateClosed, causeEndStream},
		{"closed(ES) recv H", streamSM{stateClosed, causeEndStream}, recvH(true), connErr, ErrCodeStreamClosed, stateClosed, causeEndStream},
		{"closed(ES) recv WU", streamSM{stateClosed, causeEndStream}, recvWU, ignored, 0, stateClosed, causeEndStream},
		{"closed(ES) recv R", streamSM{stateClosed, causeEndStream}, recvR, ignored, 0, stateClosed, causeEndStream},
		{"closed send DATA", streamSM{stateClosed, causeEndStream}, sendD(false), local, 0, stateClosed, causeEndStream},
		{"closed send R", streamSM{stateClosed, causeEndStream}, sendR, local, 0, stateClosed, causeEndStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.from
			e := tt.op(&m)
			got := ok
			switch {
			case e == nil:
			case e.ignore:
				got = ignored
			case e.local:
				got = local
			case e.conn:
				got = connErr
			default:
				got = streamErr
			}
			if got != tt.outcome {
				t.Fatalf("outcome %d, want %d (err %+v)", got, tt.outcome, e)
			}
			if e != nil && (got == connErr || got == streamErr) && e.code != tt.code {
				t.Fatalf("code %v, want %v", e.code, tt.code)
			}
			if m.state != tt.wantState || (m.state == stateClosed && m.cause != tt.wantCause) {
				t.Fatalf("state %v/%d, want %v/%d", m.state, m.cause, tt.wantState, tt.wantCause)
			}
		})
	}
}
