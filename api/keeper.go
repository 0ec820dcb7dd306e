package api

// The keeper's shutdown request: at return the borrower manager asks each
// lent server's keeper, over HTTPS at the tunnel's virtual IP, to power
// the server off (docs/CONTRACT.md, "Shutdown at return"). Both sides
// share these; neither imports the other.
const (
	// PathShutdown is POST with no body, answered 202 with a
	// ShutdownAnswer once the root's init was asked: signalled, or its
	// own power-off command ran and succeeded.
	PathShutdown = "/v1/shutdown"
)

// ShutdownAnswer is the body of the keeper's 202.
type ShutdownAnswer struct {
	Signal  string `json:"signal,omitempty"`  // the signal sent, by name (SIGUSR2, SIGRTMIN+4, ...)
	Command string `json:"command,omitempty"` // or the root's power-off command that ran (/sbin/poweroff)
	PID     int    `json:"pid"`               // the init asked: 1
	Client  string `json:"client"`            // subject of the client certificate
	Note    string `json:"note,omitempty"`    // why a fallback was taken
}
