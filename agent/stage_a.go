package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"ferry/initrd"
	"ferry/kexec"
	"ferry/kmod"
	"ferry/pki"
)

// fetchSettings reads the transfer settings from ferry.source=. Until the
// lender manager exists this is a plain URL on the lab network.
func (a *Agent) fetchSettings(ctx context.Context) error {
	src, ok := a.cmd.Get("ferry.source")
	if !ok || src == "" {
		return fmt.Errorf("no ferry.source= on the kernel command line")
	}
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("ferry.source=%q is not an http(s) URL", src)
	}
	data, err := newFetcher(nil, nil).get(ctx, u, maxSettings)
	if err != nil {
		return err
	}
	s, err := ParseSettings(data, u.String())
	if err != nil {
		return err
	}
	a.settingsURL, a.settings = u, s
	a.trace = traceID(a.cmd)
	a.log.Info("settings", "source", u.String(), "trace", a.trace, "nfs", s.Root.Server+":"+s.Root.Path)
	return nil
}

// waitRoot waits until the borrower has this server's root ready (copied
// and exported): it copies the root while the server boots, and answers
// image B's URL with 503 until then. Image B is fetched and booted only
// after it, so B never reaches its NFS mount before its root is there,
// however long the copy takes.
func (a *Agent) waitRoot(ctx context.Context) error {
	u, err := resolve(&url.URL{}, a.settings.Kernel.URL)
	if err != nil {
		return err
	}
	a.imageFetch = newFetcher(a.con.w, a.imageTLS)
	waited, err := a.imageFetch.waitReady(ctx, u, func(state string) {
		a.con.printf("ferry: waiting for the borrower's root: %s", state)
		a.log.Info("waiting for the borrower's root", "state", state)
	})
	if err == nil && waited {
		a.con.printf("ferry: the borrower's root is ready")
	}
	return err
}

// fetchB downloads vmlinuz(B) and initrd(B) into RAM, digests checked.
func (a *Agent) fetchB(ctx context.Context) error {
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return err
	}
	f := a.imageFetch
	if f == nil {
		f = newFetcher(a.con.w, a.imageTLS)
	}
	// Managed mode has absolute https URLs and no settings URL.
	base := a.settingsURL
	if base == nil {
		base = &url.URL{}
	}
	a.kernelPath = filepath.Join(workDir, "vmlinuz")
	a.initrdPath = filepath.Join(workDir, "initrd.img")
	type file struct {
		art   Artifact
		path  string
		limit int64
	}
	files := []file{{a.settings.Kernel, a.kernelPath, maxKernel}, {a.settings.Initrd, a.initrdPath, maxInitrd}}
	if m := a.settings.Modules; m != nil {
		// The borrower's module bundle for B's kernel (modules_bundle.go).
		a.bundlePath = filepath.Join(workDir, "modules.cpio")
		files = append(files, file{*m, a.bundlePath, maxBundle})
	}
	for _, p := range files {
		u, err := resolve(base, p.art.URL)
		if err != nil {
			return err
		}
		n, err := f.download(ctx, u, p.art.SHA256, p.path, p.limit)
		a.phaseBytes += n
		if err != nil {
			return err
		}
		a.log.Info("fetched", "url", u.String(), "bytes", n)
	}
	return nil
}

// patchB appends one cpio segment to initrd(B): ferry itself, the lease
// state and, when B runs A's kernel release, A's modules. B's bytes are
// copied unchanged and never decompressed.
func (a *Agent) patchB(ctx context.Context) error {
	state, err := json.MarshalIndent(a.carriedState(), "", "  ")
	if err != nil {
		return err
	}
	files := []initrd.File{
		{Path: BinPath, Mode: 0o755, Src: "/proc/self/exe"},
		{Path: InitPath, Link: "ferry"},
		{Path: StatePath, Mode: 0o600, Data: state},
	}
	tunnel, err := a.tunnelFiles()
	if err != nil {
		return err
	}
	files = append(files, tunnel...)
	mods, sameRelease, bRelease, err := a.modulesForB()
	if err != nil {
		return err
	}
	files = append(files, mods...)
	var bundle []initrd.File
	if a.bundlePath != "" {
		var names []string
		if bundle, names, err = bundleFiles(a.bundlePath); err != nil {
			return err
		}
		// A's own modules (same release) and the bundle may hold the same
		// file: the bundle, built for B's kernel, wins.
		files = mergeFiles(files, bundle)
		a.log.Info("module bundle appended", "modules", len(names))
		os.Remove(a.bundlePath)
	}
	if !sameRelease {
		// A's modules cannot help B's kernel: refuse now, with a report,
		// if B could not bring up its NIC, NFS or tunnel (check_b.go).
		if err := a.checkB(bRelease, bundle, a.log); err != nil {
			return err
		}
	}
	if why := kexec.InitrdPartsApply(); why != nil {
		a.log.Debug("initrd(B) patched into a file", "why", why)
		return a.writePatched(files)
	}
	if err := a.patchInPlace(files); err != nil {
		a.log.Warn("initrd(B) not patched in memory; writing the patched file", "err", err)
		return a.writePatched(files)
	}
	return nil
}

// writePatched writes initrd(B) with files appended to a file, for
// kexec_file_load (and kexec_load where the in-memory parts failed).
func (a *Agent) writePatched(files []initrd.File) error {
	a.patchedPath = filepath.Join(workDir, "initrd-patched.img")
	rep, err := initrd.Patch(a.initrdPath, a.patchedPath, files, initrd.PatchOptions{})
	if err != nil {
		return err
	}
	a.log.Info("patched initrd(B)", "report", rep.String())
	if st, err := os.Stat(a.patchedPath); err == nil {
		a.phaseBytes = st.Size()
	}
	// The original is no longer needed: give its RAM back before kexec
	// copies the patched one.
	return os.Remove(a.initrdPath)
}

// tunnelFiles is the one-time identity for B's keeper, in the format of
// ike.LoadState, built in memory: the private key exists only in RAM (here
// and in the appended segment), never in a file A writes.
func (a *Agent) tunnelFiles() ([]initrd.File, error) {
	if a.ident == nil {
		return nil, nil
	}
	js, err := json.MarshalIndent(a.ident, "", "  ")
	if err != nil {
		return nil, err
	}
	key, err := pki.MarshalKeyPEM(a.ident.Key)
	if err != nil {
		return nil, err
	}
	return []initrd.File{
		{Path: TunnelDir + "/vpn.json", Mode: 0o644, Data: append(js, '\n')},
		{Path: TunnelDir + "/cert.pem", Mode: 0o644, Data: pki.CertPEM(a.ident.Certs...)},
		{Path: TunnelDir + "/ca.pem", Mode: 0o644, Data: pki.CertPEM(a.ident.CAs...)},
		{Path: TunnelDir + "/key.pem", Mode: 0o600, Data: key},
	}, nil
}

// modulesForB lists A's kernel modules for the appended segment when B's
// kernel is the same release; B's initrd may lack NIC and NFS drivers.
// Otherwise B loads its own initrd's (modules_b.go).
func (a *Agent) modulesForB() (_ []initrd.File, same bool, bRelease string, _ error) {
	f, err := os.Open(a.kernelPath)
	if err != nil {
		return nil, false, "", err
	}
	defer f.Close()
	bz, err := kexec.ParseBzImage(f)
	if err != nil {
		return nil, false, "", fmt.Errorf("%s: %w", a.settings.Kernel.URL, err)
	}
	rel, err := kmod.Release()
	if err != nil {
		return nil, false, "", err
	}
	if bz.Release() != rel {
		a.log.Info("B's kernel differs from A's: B loads its own initrd's modules", "a", rel, "b", bz.Release())
		return nil, false, bz.Release(), nil
	}
	dir := filepath.Join("/lib/modules", rel)
	var files []initrd.File
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".ko" {
			return err
		}
		r, _ := filepath.Rel(dir, p)
		files = append(files, initrd.File{Path: filepath.Join(ModuleDir, r), Mode: 0o644, Src: p})
		return nil
	})
	return files, true, rel, err
}

// kexecLoad loads B's kernel and the patched initrd with B's command line.
func (a *Agent) kexecLoad(ctx context.Context) error {
	cmdline := bCmdline(a.settings.Cmdline, a.trace)
	if p := a.inPlace; p != nil {
		a.inPlace = nil
		method, err := kexec.LoadInitrdParts(a.kernelPath, p.parts, cmdline)
		p.release()
		if err == nil {
			a.log.Info("kexec loaded", "method", method, "firmware", "bios", "initrd", "memory", "cmdline", cmdline)
			return nil
		}
		a.log.Warn("kexec_load of the initrd in memory failed; writing it to a file", "err", err)
		if err := a.writePatched(p.files); err != nil {
			return err
		}
	}
	method, err := kexec.Load(a.kernelPath, a.patchedPath, cmdline, kexec.Options{})
	if err != nil {
		return err
	}
	// Under UEFI the kernel's kexec_file_load passes B the EFI runtime
	// mappings (setup_data); u-root's kexec_load copies A's boot_params
	// only and is untried under UEFI: the line says which case this is.
	fw := "bios"
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		fw = "uefi"
	}
	a.log.Info("kexec loaded", "method", method, "firmware", fw, "cmdline", cmdline)
	return nil
}

func (a *Agent) jump() error {
	return kexec.Exec()
}

// traceID ties A's and B's reports together; it rides on B's command line.
func traceID(c *Cmdline) string {
	if t, ok := c.Get("ferry.trace"); ok && t != "" {
		return t
	}
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
