package agent

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Settings are the transfer settings image A fetches: where image B is,
// what it must hash to, and how B reaches its root. Until the managers
// exist (a later issue) they come from a plain HTTP URL on the lab network.
type Settings struct {
	Kernel  Artifact `json:"kernel"`
	Initrd  Artifact `json:"initrd"`
	Cmdline string   `json:"cmdline"`
	Root    Root     `json:"root"`
	// Modules is the borrower's module bundle for B's kernel, if any
	// (modules_bundle.go).
	Modules *Artifact `json:"modules,omitempty"`
}

// Artifact is one file of image B, addressed relative to the settings URL.
type Artifact struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Root says which NFS export becomes B's root and how.
type Root struct {
	Server     string `json:"server"`
	Path       string `json:"path"`
	NFSVersion string `json:"nfs_version"`
	Options    string `json:"options"`
	Init       string `json:"init"`
	State      string `json:"state"`
}

// maxSettings bounds the settings document: it is a few hundred bytes.
const maxSettings = 64 << 10

// ParseSettings decodes and validates a settings document; src names it in
// errors. Unknown fields are refused so a typo does not silently fall back
// to a default.
func ParseSettings(data []byte, src string) (*Settings, error) {
	if len(data) > maxSettings {
		return nil, fmt.Errorf("settings %s: %d bytes, more than the %d allowed", src, len(data), maxSettings)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var s Settings
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("settings %s: %w", src, err)
	}
	s.defaults()
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("settings %s: %w", src, err)
	}
	return &s, nil
}

func (s *Settings) defaults() {
	if s.Root.Path == "" {
		s.Root.Path = "/"
	}
	if s.Root.NFSVersion == "" {
		s.Root.NFSVersion = "4.1"
	}
	if s.Root.Init == "" {
		s.Root.Init = "/sbin/init"
	}
	if s.Root.State == "" {
		s.Root.State = "tmpfs"
	}
}

func (s *Settings) modulesArtifact() Artifact {
	if s.Modules == nil {
		return Artifact{}
	}
	return *s.Modules
}

func (s *Settings) validate() error {
	for _, a := range []struct {
		field string
		art   Artifact
	}{{"kernel", s.Kernel}, {"initrd", s.Initrd}, {"modules", s.modulesArtifact()}} {
		if a.field == "modules" && s.Modules == nil {
			continue
		}
		if a.art.URL == "" {
			return fmt.Errorf("%s.url is empty", a.field)
		}
		if b, err := hex.DecodeString(a.art.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%s.sha256 %q is not 64 hex digits", a.field, a.art.SHA256)
		}
	}
	if _, err := netip.ParseAddr(s.Root.Server); err != nil {
		return fmt.Errorf("root.server %q is not an IP address (an initramfs has no resolver)", s.Root.Server)
	}
	if !strings.HasPrefix(s.Root.Path, "/") {
		return fmt.Errorf("root.path %q is not absolute", s.Root.Path)
	}
	if !strings.HasPrefix(s.Root.Init, "/") {
		return fmt.Errorf("root.init %q is not absolute", s.Root.Init)
	}
	if s.Root.State != "tmpfs" && s.Root.State != "copy" {
		return fmt.Errorf("root.state %q: want tmpfs or copy", s.Root.State)
	}
	if strings.ContainsAny(s.Cmdline, "\x00\n") {
		return fmt.Errorf("cmdline contains a NUL or newline")
	}
	return nil
}

// resolve turns an artifact's URL into an absolute one, relative to the
// settings URL; only http and https are fetched.
func resolve(base *url.URL, ref string) (*url.URL, error) {
	u, err := base.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", ref, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: scheme %q is not http or https", ref, u.Scheme)
	}
	return u, nil
}
