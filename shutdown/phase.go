package shutdown

// Phase is a step of the process drain. A drain only moves forward:
//
//	Serving        normal service; /readyz 200
//	NotReady       /readyz 503 while sluice keeps accepting and serving for
//	               the lame-duck delay, so load balancers take it out first
//	StopAccepting  the listeners close to new connections
//	Draining       every connection is asked to finish (HTTP/1.1
//	               Connection: close, HTTP/2 GOAWAY, idle ones close at
//	               once); wait for none to be left, up to the deadline
//	Forcing        the deadline passed (or a second signal came): the rest
//	               are aborted, each logged and counted as forced_at_deadline
//	Done           nothing is left; the process may exit
type Phase uint8

// Phases, in order. The value is what the sluice_drain_phase gauge shows.
const (
	Serving Phase = iota
	NotReady
	StopAccepting
	Draining
	Forcing
	Done
	numPhases
)

var phaseNames = [numPhases]string{"Serving", "NotReady", "StopAccepting", "Draining", "Forcing", "Done"}

func (p Phase) String() string {
	if p < numPhases {
		return phaseNames[p]
	}
	return "Phase(?)"
}
