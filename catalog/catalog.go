package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Catalog is what the borrower manager needs of an image store.
type Catalog interface {
	// Add checks and copies an image. modulesDir, when not empty, is B's
	// kernel modules tree (lib/modules/RELEASE) to bundle modules from.
	Add(ctx context.Context, name, kernelPath, initrdPath, cmdline, modulesDir string) (Image, error)
	Get(ctx context.Context, name string) (Image, error)
	List(ctx context.Context) ([]Image, error)
	Remove(ctx context.Context, name string) error
}

// Errors callers may test for with errors.Is.
var (
	ErrNotFound = errors.New("no such image")
	ErrExists   = errors.New("a different image has this name")
)

// Image is one catalogue entry: what the manifest records.
type Image struct {
	Name string `json:"name"`
	// Release is the kernel release read from the bzImage header
	// ("6.1.0-56-amd64").
	Release string    `json:"release"`
	Cmdline string    `json:"cmdline"`
	Kernel  Artifact  `json:"kernel"`
	Initrd  Artifact  `json:"initrd"`
	Modules *Bundle   `json:"modules,omitempty"`
	Added   time.Time `json:"added"`
}

// Artifact is one stored file.
type Artifact struct {
	File   string `json:"file"`   // base name in the image's directory
	SHA256 string `json:"sha256"` // lowercase hex
	Size   int64  `json:"size"`
	// Path is where the file is now; filled in by the store, not stored.
	Path string `json:"-"`
}

// Bundle is the module segment for the agent to append to initrd(B). Its
// files are under ferry/modules/ (the agent's module directory), at their
// paths relative to the modules tree.
type Bundle struct {
	Artifact
	// Names are the bundled modules in load order.
	Names []string `json:"names"`
	// Present are the needed modules initrd(B) already holds, by name.
	Present []string `json:"present,omitempty"`
}

// sameContent reports whether two images have the same bytes and command
// line, so adding one again is a no-op rather than a conflict.
func (im Image) sameContent(o Image) bool {
	same := im.Kernel.SHA256 == o.Kernel.SHA256 && im.Initrd.SHA256 == o.Initrd.SHA256 && im.Cmdline == o.Cmdline
	switch {
	case im.Modules == nil || o.Modules == nil:
		return same && im.Modules == nil && o.Modules == nil
	default:
		return same && im.Modules.SHA256 == o.Modules.SHA256
	}
}

// MaxNameLen bounds an image name.
const MaxNameLen = 64

// ValidateName accepts 1 to MaxNameLen characters of [a-z0-9._-] that start
// with a letter or digit (so no name is hidden, "." or "..").
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("image name %.80q: want 1 to %d characters", name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("image name %q: byte %d (%q) not allowed: want [a-z0-9] first, then [a-z0-9._-]", name, i, c)
		}
	}
	return nil
}
