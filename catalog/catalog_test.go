package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A tree where esp4 needs xfrm_algo and the initrd already has virtio_net.
func transferFixture(t *testing.T, release string) (kernel, initrdPath, modules string) {
	dir := t.TempDir()
	kernel = fakeKernel(t, dir, testRelease)
	initrdPath = fakeInitrd(t, dir, map[string]string{
		"init": "#!/bin/sh\n",
		"lib/modules/" + testRelease + "/kernel/virtio_net.ko": "x",
	})
	modules = modTree(t, dir, release, map[string]string{
		"virtio_net": "", "esp4": "xfrm_algo", "xfrm_algo": "", "nfs": "sunrpc", "sunrpc": "",
	})
	return kernel, initrdPath, modules
}

func TestAddBundlesMissingModulesWithDependencies(t *testing.T) {
	k, i, m := transferFixture(t, testRelease)
	d := openDir(t, "virtio_net", "esp4", "nfs")
	im, err := d.Add(bg, "debian-12", k, i, "console=ttyS0", m)
	if err != nil {
		t.Fatal(err)
	}
	if im.Release != testRelease {
		t.Errorf("release %q, want %q", im.Release, testRelease)
	}
	if im.Modules == nil {
		t.Fatal("no module bundle")
	}
	if want := []string{"xfrm_algo", "esp4", "sunrpc", "nfs"}; !slices.Equal(im.Modules.Names, want) {
		t.Errorf("bundled %v, want %v", im.Modules.Names, want)
	}
	if want := []string{"virtio_net"}; !slices.Equal(im.Modules.Present, want) {
		t.Errorf("present %v, want %v", im.Modules.Present, want)
	}
	got := bundleEntries(t, im.Modules.Path)
	if want := "ferry/modules/kernel/esp4.ko"; !slices.Contains(got, want) || len(got) != 4 {
		t.Errorf("bundle files %v, want 4 including %s", got, want)
	}
}

func TestAddRecordsDigestsAndCopies(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	d := openDir(t)
	im, err := d.Add(bg, "b", k, i, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Artifact{im.Kernel, im.Initrd} {
		data, err := os.ReadFile(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != a.Size || len(a.SHA256) != 64 || !strings.HasPrefix(a.Path, d.Root) {
			t.Errorf("artifact %+v: stored %d bytes", a, len(data))
		}
	}
	if im.Modules != nil {
		t.Errorf("bundle %+v without a modules dir", im.Modules)
	}
	again, err := d.Get(bg, "b")
	if err != nil || again.Kernel != im.Kernel || again.Initrd != im.Initrd {
		t.Errorf("Get = %+v, %v; want %+v", again, err, im)
	}
}

func TestAddSameImageTwiceIsIdempotent(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	d := openDir(t)
	first, err := d.Add(bg, "b", k, i, "quiet", "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.Add(bg, "b", k, i, "quiet", "")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Added.Equal(second.Added) || first.Kernel != second.Kernel {
		t.Errorf("second add %+v differs from first %+v", second, first)
	}
}

func TestAddRefusesDifferentImageUnderTakenName(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	d := openDir(t)
	if _, err := d.Add(bg, "b", k, i, "quiet", ""); err != nil {
		t.Fatal(err)
	}
	_, err := d.Add(bg, "b", k, i, "quiet debug", "")
	if !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	im, _ := d.Get(bg, "b")
	if im.Cmdline != "quiet" {
		t.Errorf("stored cmdline %q changed", im.Cmdline)
	}
	assertNoLeftovers(t, d)
}

func TestAddRefusesNonBzImage(t *testing.T) {
	_, i, _ := transferFixture(t, testRelease)
	bad := filepath.Join(t.TempDir(), "vmlinuz")
	writeFile(t, bad, make([]byte, 4096))
	d := openDir(t)
	_, err := d.Add(bg, "b", bad, i, "", "")
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want a refusal naming %s", err, bad)
	}
	assertNoLeftovers(t, d)
}

func TestAddRefusesCorruptInitrdNamingTheSegment(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	data, _ := os.ReadFile(i)
	bad := filepath.Join(t.TempDir(), "initrd-bad.img")
	writeFile(t, bad, append(data[:len(data)/2:len(data)/2], []byte("garbage!")...))
	d := openDir(t)
	_, err := d.Add(bg, "b", k, bad, "", "")
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("err = %v, want the scanner's error naming %s and an offset", err, bad)
	}
	assertNoLeftovers(t, d)
}

func TestAddRefusesUnknownModule(t *testing.T) {
	k, i, m := transferFixture(t, testRelease)
	d := openDir(t, "esp4", "no_such_driver")
	_, err := d.Add(bg, "b", k, i, "", m)
	if err == nil || !strings.Contains(err.Error(), "no_such_driver") {
		t.Fatalf("err = %v, want one naming no_such_driver", err)
	}
	assertNoLeftovers(t, d)
}

func TestAddRefusesModulesOfAnotherRelease(t *testing.T) {
	k, i, m := transferFixture(t, "6.1.0-48-amd64")
	d := openDir(t, "esp4")
	_, err := d.Add(bg, "b", k, i, "", m)
	if err == nil || !strings.Contains(err.Error(), "6.1.0-48-amd64") || !strings.Contains(err.Error(), testRelease) {
		t.Fatalf("err = %v, want a release mismatch naming both", err)
	}
	assertNoLeftovers(t, d)
}

func TestAddRefusesBadNames(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	d := openDir(t)
	for _, n := range []string{"", ".", "..", "../x", "Debian", "a/b", ".hidden", "-x", strings.Repeat("a", 65), "a b"} {
		if _, err := d.Add(bg, n, k, i, "", ""); err == nil {
			t.Errorf("Add(%q) accepted", n)
		}
	}
	assertNoLeftovers(t, d)
}

func TestRemoveThenGetIsNotFound(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	d := openDir(t)
	for _, n := range []string{"a", "b"} {
		if _, err := d.Add(bg, n, k, i, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Remove(bg, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(bg, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v, want ErrNotFound", err)
	}
	if err := d.Remove(bg, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v, want ErrNotFound", err)
	}
	ims, err := d.List(bg)
	if err != nil || len(ims) != 1 || ims[0].Name != "b" {
		t.Errorf("List = %v, %v; want only b", ims, err)
	}
	assertNoLeftovers(t, d)
}

func TestListSkipsCorruptManifestButNamesIt(t *testing.T) {
	k, i, _ := transferFixture(t, testRelease)
	d := openDir(t)
	if _, err := d.Add(bg, "good", k, i, "", ""); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.Root, "bad", manifestFile), []byte(`{"name":"bad","kernel":{"file":"../../etc/passwd"}}`))
	ims, err := d.List(bg)
	if len(ims) != 1 || err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("List = %d images, %v; want good listed and bad named", len(ims), err)
	}
}

// assertNoLeftovers checks that failed or finished operations left no
// temporary directories behind.
func assertNoLeftovers(t *testing.T, d *Dir) {
	t.Helper()
	ents, _ := os.ReadDir(d.Root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s in the catalogue", e.Name())
		}
	}
}
