package vmlab

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Images are what a lab boots: built by scripts/build-images.sh (shell
// fits there) into Lab, from the Debian kernel that scripts/fetch-kernel.sh
// keeps in the cache (FERRY_CACHE, default build/cache), plus image A with
// kernel ESP's modules and tun built by `ferry initrd build --esp`.
type Images struct {
	Lab      string // FERRY_LAB_DIR of the build
	Vmlinuz  string // the kernel A boots
	ModDir   string
	InitrdA  string
	VmlinuzB string
	InitrdB  string
	Export   string // the root template (scripts/root-init.sh as /sbin/init)
	Disk     string // the lent server's local disk
	ModulesB string // `image add --modules` for B (B's release); "" none
}

// Repo is the ferry repository the test runs in (the directory holding
// go.mod).
func Repo(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		t.Fatalf("cannot find the repository (go env GOMOD: %q, %v)", mod, err)
	}
	return filepath.Dir(mod)
}

// BuildImages builds the lab's images into lab with the ferry binary
// ferry, fetching the kernel into the cache first if it is not there.
func BuildImages(t testing.TB, repo, ferry, lab string) Images {
	t.Helper()
	if err := os.MkdirAll(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "FERRY_LAB_DIR="+lab)
	vmlinuz, moddir := KernelCache(t, repo, lab)
	runScript(t, env, filepath.Join(lab, "build.log"), filepath.Join(repo, "scripts", "build-images.sh"), ferry)
	im := Images{Lab: lab, Vmlinuz: vmlinuz, ModDir: moddir,
		InitrdA: filepath.Join(lab, "initrd-a-esp.img"), VmlinuzB: filepath.Join(lab, "www", "vmlinuz-b"),
		InitrdB: filepath.Join(lab, "www", "initrd-b.img"), Export: filepath.Join(lab, "export"), Disk: filepath.Join(lab, "disk.raw")}
	buildInitrdA(t, ferry, im)
	return im
}

// KernelCache is the Debian kernel the lab boots and its modules'
// directory, fetched into the cache (FERRY_CACHE, default build/cache)
// by scripts/fetch-kernel.sh if it is not there yet (its log in lab).
func KernelCache(t testing.TB, repo, lab string) (vmlinuz, moddir string) {
	t.Helper()
	if err := os.MkdirAll(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("FERRY_CACHE")
	if cache == "" {
		cache = filepath.Join(repo, "build", "cache")
	}
	kenv := filepath.Join(cache, "kernel.env")
	if _, err := os.Stat(kenv); err != nil {
		runScript(t, append(os.Environ(), "FERRY_LAB_DIR="+lab), filepath.Join(lab, "fetch-kernel.log"),
			filepath.Join(repo, "scripts", "fetch-kernel.sh"))
	}
	kv := readEnvFile(t, kenv)
	return kv["VMLINUZ"], kv["MODDIR"]
}

func runScript(t testing.TB, env []string, logPath string, argv ...string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, tail(string(b), 2000))
	}
}

// readEnvFile reads KEY=VALUE lines (kernel.env).
func readEnvFile(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// buildInitrdA makes image A's initrd for im.ModDir.
func buildInitrdA(t testing.TB, ferry string, im Images) {
	t.Helper()
	// Kernel ESP's modules (kmod.ESPModules, --esp), tun for user-space
	// ESP and tcp_diag for the keeper's reset of stalled NFS connections
	// (B runs A's release and loads what A carries): image A of the
	// managed chain.
	if out, err := Run(ferry, "initrd", "build", "-o", im.InitrdA, "--kernel-modules", im.ModDir,
		"--module", "virtio_net", "--module", "virtio_blk", "--module", "virtio_pci", "--module", "nfsv4",
		"--module", "tun", "--module", "tcp_diag", "--esp", "--compress", "zstd"); err != nil {
		t.Fatalf("image A: %v\n%s", err, out)
	}
}
