package agent

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strings"

	"ferry/initrd"
	"ferry/keeper"
	"ferry/kmod"
)

// Before kexec, A checks that B's kernel can possibly bring up what B
// needs: a driver for the NIC A runs on, the NFS client and, under a
// lease, the chosen ESP plane (esp4 for kernel ESP, tun for user space).
// It looks where B will: initrd(B)'s module tree for B's release, the
// borrower's bundle and the kernel's built-in drivers. Missing, A fails
// patch-b with a report the borrower sees, instead of a B that dies in
// its network phase where nobody hears it. It refuses only when sure:
// without modules.builtin(.modinfo) in initrd(B), a driver could be
// built in, and A only warns.

// maxModuleEntry bounds one module read out of initrd(B).
const maxModuleEntry = 64 << 20

// bModules is what B's kernel will have.
type bModules struct {
	release      string
	tree         string // "usr/lib/modules/REL" or "lib/modules/REL", "" if none
	modules      map[string]bool
	aliases      []kmod.Alias
	dependAlias  bool // modules.alias seen: it replaces the .modinfo aliases
	depmod       []kmod.Alias
	builtin      map[string]bool
	builtinKnown bool // modules.builtin seen
	builtinAlias bool // modules.builtin.modinfo seen
	// modinfo: read each module's .modinfo for its aliases (the second
	// pass, only when initrd(B) has no modules.alias: depmod's, as
	// mkinitramfs and dracut write it, spares decompressing every module).
	modinfo bool
}

func newBModules(release string) *bModules {
	return &bModules{release: release, modules: map[string]bool{}, builtin: map[string]bool{}}
}

// scanInitrdModules reads initrd(B)'s module tree for release.
func scanInitrdModules(p, release string) (*bModules, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := newBModules(release)
	prefixes := []string{"usr/lib/modules/" + release + "/", "lib/modules/" + release + "/"}
	if err := m.scan(f, st.Size(), prefixes, m.addFile); err != nil {
		return nil, err
	}
	if m.tree != "" && !m.dependAlias {
		m.modinfo = true
		err := m.scan(f, st.Size(), prefixes, func(rel string, body io.Reader) error {
			if stem, ok := kmod.ModuleStem(path.Base(rel)); ok {
				return m.readModule(rel, stem, body)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// scan calls fn for each regular file of the module tree in initrd(B).
func (m *bModules) scan(f io.ReaderAt, size int64, prefixes []string, fn func(rel string, body io.Reader) error) error {
	_, err := initrd.Scan(f, size, "initrd(B)", func(_ *initrd.Segment, e *initrd.Entry, body io.Reader) error {
		if !e.FileMode().IsRegular() {
			return nil
		}
		name := strings.TrimPrefix(path.Clean("/"+e.Name), "/")
		var rel string
		for _, pre := range prefixes {
			if r, ok := strings.CutPrefix(name, pre); ok {
				rel, m.tree = r, strings.TrimSuffix(pre, "/")
			}
		}
		if rel == "" {
			return nil
		}
		return fn(rel, body)
	})
	return err
}

// addFile takes one file of a module tree (rel to its top).
func (m *bModules) addFile(rel string, body io.Reader) error {
	switch rel {
	case "modules.alias":
		al, err := kmod.ParseModulesAlias(body, rel)
		if err != nil {
			return err
		}
		m.dependAlias, m.depmod = true, al
		return nil
	case "modules.builtin":
		b, err := kmod.ParseModulesBuiltin(body, rel)
		if err != nil {
			return err
		}
		m.builtinKnown = true
		maps.Copy(m.builtin, b)
		return nil
	case "modules.builtin.modinfo":
		data, err := readEntry(rel, body)
		if err != nil {
			return err
		}
		m.builtinAlias = true
		m.aliases = append(m.aliases, kmod.ParseBuiltinModinfo(data)...)
		return nil
	}
	if stem, ok := kmod.ModuleStem(path.Base(rel)); ok {
		m.modules[kmod.NormalizeName(stem)] = true
	}
	return nil
}

// readModule reads one module's aliases (second pass).
func (m *bModules) readModule(rel, stem string, body io.Reader) error {
	data, err := readEntry(rel, body)
	if err != nil {
		return err
	}
	m.addModule(stem, data)
	return nil
}

// readEntry reads one file of initrd(B)'s module tree, at most
// maxModuleEntry bytes.
func readEntry(rel string, body io.Reader) ([]byte, error) {
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(body, maxModuleEntry+1))
	if err == nil && n > maxModuleEntry {
		err = fmt.Errorf("more than %d bytes", maxModuleEntry)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return b.Bytes(), nil
}

// addModule records one module and its aliases; one whose .modinfo cannot
// be read still counts as present (B may load it; the check only refuses
// when sure).
func (m *bModules) addModule(stem string, data []byte) {
	m.modules[kmod.NormalizeName(stem)] = true
	if info, err := kmod.ReadInfoImage(data); err == nil {
		for _, a := range info.Aliases {
			m.aliases = append(m.aliases, kmod.Alias{Pattern: a, Module: stem})
		}
	}
}

// addBundle records the borrower's bundle, which A appends.
func (m *bModules) addBundle(files []initrd.File) {
	for _, f := range files {
		if stem, ok := kmod.ModuleStem(path.Base(f.Path)); ok {
			m.addModule(stem, f.Data)
		}
	}
}

func (m *bModules) has(name string) bool {
	k := kmod.NormalizeName(name)
	return m.modules[k] || m.builtin[k]
}

// check says why B's kernel cannot bring up what B needs; nil when it can
// or when A cannot be sure. warn receives the unsure cases.
func (m *bModules) check(nic []string, plane keeper.DataPlane, tunnel bool, warn func(string)) error {
	var missing []string
	aliases := m.aliases
	if m.dependAlias {
		aliases = append(m.depmod, aliases...)
	}
	for _, ma := range nic {
		if len(kmod.MatchAliases(aliases, []string{ma})) > 0 {
			continue
		}
		if m.builtinAlias {
			missing = append(missing, fmt.Sprintf("no driver for the NIC (modalias %s)", ma))
		} else {
			warn(fmt.Sprintf("no module for the NIC (modalias %s), and initrd(B) has no modules.builtin.modinfo to tell a built-in driver", ma))
		}
	}
	need := func(what string, names ...string) {
		for _, n := range names {
			if m.has(n) {
				return
			}
		}
		if m.builtinKnown {
			missing = append(missing, fmt.Sprintf("no %s (%s)", what, strings.Join(names, " or ")))
		} else {
			warn(fmt.Sprintf("no %s module (%s), and initrd(B) has no modules.builtin to tell a built-in one", what, strings.Join(names, " or ")))
		}
	}
	need("NFS client", "nfs")
	if tunnel {
		switch plane {
		case keeper.DataPlaneKernel:
			need("kernel ESP", "esp4")
		case keeper.DataPlaneUser:
			need("TUN device for user-space ESP", "tun")
		default:
			need("ESP plane", "esp4", "tun")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	where := "initrd(B) has no module tree for it"
	if m.tree != "" {
		where = fmt.Sprintf("looked in initrd(B)'s /%s (%d modules), the borrower's module bundle and the built-in drivers", m.tree, len(m.modules))
	}
	return fmt.Errorf("B's kernel %s cannot bring up the transfer: %s; %s", m.release, strings.Join(missing, ", "), where)
}

// nicModaliases are the modaliases B needs drivers for to bring up the
// NIC named link: its device's and, for a virtio NIC, the PCI (or MMIO)
// device virtio_pci binds first.
func nicModaliases(sysfs, link string) []string {
	dev, err := filepath.EvalSymlinks(filepath.Join(sysfs, "class/net", link, "device"))
	if err != nil {
		return nil // a virtual NIC: no driver to check
	}
	var out []string
	if ma, err := kmod.ReadModalias(filepath.Join(dev, "modalias")); err == nil && ma != "" {
		out = append(out, ma)
	}
	if sub, err := os.Readlink(filepath.Join(dev, "subsystem")); err == nil && filepath.Base(sub) == "virtio" {
		if ma, err := kmod.ReadModalias(filepath.Join(dev, "..", "modalias")); err == nil && ma != "" {
			out = append(out, ma)
		}
	}
	return out
}

// checkB runs the check on the fetched initrd(B) for B's release.
func (a *Agent) checkB(release string, bundle []initrd.File, log *slog.Logger) error {
	m, err := scanInitrdModules(a.initrdPath, release)
	if err != nil {
		return fmt.Errorf("reading initrd(B)'s modules: %w", err)
	}
	m.addBundle(bundle)
	plane, _ := a.dataPlane()
	nic := nicModaliases("/sys", a.linkName)
	err = m.check(nic, plane, a.ident != nil, func(s string) { log.Warn("B's kernel: cannot be sure", "why", s) })
	if err == nil {
		log.Info("B's kernel can bring up the transfer", "release", release, "tree", m.tree,
			"modules", len(m.modules), "nic", nic)
	}
	return err
}
