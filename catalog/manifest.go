package catalog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Manifest bounds: a manifest names a few hundred modules at most.
const (
	manifestFile   = "manifest.json"
	MaxManifest    = 256 << 10
	maxCmdline     = 4096
	maxModuleNames = 4096
)

// ParseManifest decodes and validates a manifest, refusing unknown fields,
// trailing data, oversized input and any field that could make a store
// reach outside an image's directory.
func ParseManifest(r io.Reader) (Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxManifest+1))
	if err != nil {
		return Image{}, fmt.Errorf("read manifest: %w", err)
	}
	if len(data) > MaxManifest {
		return Image{}, fmt.Errorf("manifest: larger than %d bytes", MaxManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var im Image
	if err := dec.Decode(&im); err != nil {
		return Image{}, fmt.Errorf("manifest: %w", err)
	}
	if dec.More() {
		return Image{}, fmt.Errorf("manifest: data after the JSON object")
	}
	if err := im.validate(); err != nil {
		return Image{}, fmt.Errorf("manifest: %w", err)
	}
	return im, nil
}

func (im Image) validate() error {
	if err := ValidateName(im.Name); err != nil {
		return fmt.Errorf("field name: %w", err)
	}
	if im.Release == "" || len(im.Release) > 64 || strings.ContainsAny(im.Release, "/ \x00") {
		return fmt.Errorf("field release %.80q: want 1 to 64 bytes, no '/', space or NUL", im.Release)
	}
	if len(im.Cmdline) > maxCmdline || strings.ContainsRune(im.Cmdline, 0) {
		return fmt.Errorf("field cmdline: longer than %d bytes or holds NUL", maxCmdline)
	}
	if err := im.Kernel.validate("kernel", kernelFile); err != nil {
		return err
	}
	if err := im.Initrd.validate("initrd", initrdFile); err != nil {
		return err
	}
	if im.Modules == nil {
		return nil
	}
	if err := im.Modules.validate("modules", bundleFile); err != nil {
		return err
	}
	if len(im.Modules.Names)+len(im.Modules.Present) > maxModuleNames {
		return fmt.Errorf("field modules: more than %d names", maxModuleNames)
	}
	return nil
}

func (a Artifact) validate(field, file string) error {
	if a.File != file {
		return fmt.Errorf("field %s.file %.80q: want %q", field, a.File, file)
	}
	if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 || strings.ToLower(a.SHA256) != a.SHA256 {
		return fmt.Errorf("field %s.sha256 %.80q: want 64 lowercase hex digits", field, a.SHA256)
	}
	if a.Size < 0 {
		return fmt.Errorf("field %s.size %d: negative", field, a.Size)
	}
	return nil
}

func encodeManifest(im Image) ([]byte, error) {
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest of %s: %w", im.Name, err)
	}
	return append(b, '\n'), nil
}
