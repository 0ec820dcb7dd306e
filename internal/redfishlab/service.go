package redfishlab

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// Machine is what the service switches. PowerState answers Redfish's
// values (On, Off, PoweringOn, PoweringOff); Reset takes a ResetType from
// ResetTypes.
type Machine interface {
	PowerState(ctx context.Context) (string, error)
	Reset(ctx context.Context, resetType string) error
}

// ResetTypes are the reset types the system offers
// (ResetType@Redfish.AllowableValues).
var ResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"}

// The Boot properties' allowable values (ComputerSystem schema's
// BootSource, BootSourceOverrideEnabled and BootSourceOverrideMode enums).
var (
	BootTargets = []string{"None", "Pxe", "Hdd", "Cd", "Usb", "BiosSetup", "UefiShell", "UefiHttp"}
	BootEnabled = []string{"Disabled", "Once", "Continuous"}
	BootModes   = []string{"Legacy", "UEFI"}
)

// Boot is a ComputerSystem's boot override.
type Boot struct {
	Target, Enabled, Mode string
}

// Config describes the service.
type Config struct {
	User, Password string
	SystemID       string // default "1"
	Machine        Machine
	// RequireIfMatch answers 428 to a PATCH without If-Match, as BMCs
	// that insist on optimistic locking do.
	RequireIfMatch bool
}

// Service is the Redfish service; Handler serves it.
type Service struct {
	cfg      Config
	mu       sync.Mutex
	sessions map[string]string // id -> token
	boot     Boot
	version  int      // the system's ETag counter, bumped by every change
	boots    []Boot   // the overrides consumed by power-ons
	requests []string // method and path of every request, for tests
	ifMatch  []string // the If-Match of every PATCH
	uuid     string
}

// New makes a service for cfg.
func New(cfg Config) *Service {
	if cfg.SystemID == "" {
		cfg.SystemID = "1"
	}
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return &Service{cfg: cfg, sessions: map[string]string{}, version: 1,
		boot: Boot{Target: "None", Enabled: "Disabled", Mode: "Legacy"},
		uuid: h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]}
}

// Boots lists the boot overrides power-ons consumed, oldest first.
func (s *Service) Boots() []Boot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.boots)
}

// Requests lists "METHOD PATH" of every request so far.
func (s *Service) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// IfMatch lists the If-Match header of every PATCH ("" when missing).
func (s *Service) IfMatch() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ifMatch)
}

// Sessions is the number of open sessions.
func (s *Service) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Service) systemPath() string { return "/redfish/v1/Systems/" + s.cfg.SystemID }

// etag is the system's current ETag (a weak one, as most BMCs send).
func (s *Service) etag() string { return fmt.Sprintf(`W/"%d"`, s.version) }

// authorized checks the session token or HTTP Basic credentials.
func (s *Service) authorized(r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, t := range s.sessions {
			if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
				return true
			}
		}
		return false
	}
	u, p, ok := r.BasicAuth()
	return ok && s.credentials(u, p)
}

func (s *Service) credentials(u, p string) bool {
	return subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.User)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
}
