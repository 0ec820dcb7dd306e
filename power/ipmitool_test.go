package power

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeIPMITool writes a stand-in for ipmitool that records its argv and
// IPMI_PASSWORD and answers status with answer.
func fakeIPMITool(t *testing.T, answer string) (path, record string) {
	d := t.TempDir()
	path, record = filepath.Join(d, "ipmitool"), filepath.Join(d, "record")
	script := "#!/bin/sh\necho \"argv: $*\" >> " + record + "\necho \"pw: $IPMI_PASSWORD\" >> " + record +
		"\ncase \"$*\" in *status) echo '" + answer + "';; esac\n"
	if answer == "" { // follow the power commands, as a BMC would
		script = "#!/bin/sh\necho \"argv: $*\" >> " + record + "\necho \"pw: $IPMI_PASSWORD\" >> " + record +
			"\ncase \"$*\" in *'power on') echo on > " + d + "/state;; *'power off') echo off > " + d + "/state;;" +
			" *status) echo \"Chassis Power is $(cat " + d + "/state)\";; esac\n"
		os.WriteFile(filepath.Join(d, "state"), []byte("off\n"), 0o644)
	}
	os.WriteFile(path, []byte(script), 0o755)
	return path, record
}

func TestIPMIToolPasswordNeverInArgvOrLog(t *testing.T) {
	bin, rec := fakeIPMITool(t, "")
	t.Setenv("FERRY_TEST_BMC_PW", "s3cret-pw")
	var log bytes.Buffer
	d, err := New("ipmitool", map[string]string{"host": "10.42.9.9", "user": "admin", "password_env": "FERRY_TEST_BMC_PW", "path": bin},
		slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, op := range []func(context.Context) error{d.On, d.Off, d.Reset} {
		if err := op(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(rec)
	pre := "argv: -I lanplus -H 10.42.9.9 -U admin -E "
	var want string
	for _, c := range []string{"chassis bootdev pxe", "chassis power on", "chassis power status",
		"chassis power off", "chassis power status", "chassis power cycle"} {
		want += pre + c + "\npw: s3cret-pw\n"
	}
	if string(got) != want {
		t.Fatalf("ipmitool saw:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(log.String(), "s3cret") {
		t.Fatalf("password in the log:\n%s", log.String())
	}
}

// With firmware=uefi the one-time boot asks for EFI; bootdev=none leaves
// the boot order alone.
func TestIPMIToolBootOptions(t *testing.T) {
	t.Setenv("FERRY_TEST_BMC_PW", "pw")
	for opt, first := range map[string]string{"uefi": "chassis bootdev pxe options=efiboot", "none": "chassis power on"} {
		bin, rec := fakeIPMITool(t, "")
		o := map[string]string{"host": "h", "user": "u", "password_env": "FERRY_TEST_BMC_PW", "path": bin, "cipher": "3"}
		if opt == "uefi" {
			o["firmware"] = "uefi"
		} else {
			o["bootdev"] = "none"
		}
		d, err := New("ipmitool", o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.On(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(rec)
		if l := strings.SplitN(string(got), "\n", 2)[0]; !strings.HasSuffix(l, " -C 3 -U u -E "+first) {
			t.Errorf("%s: first command %q, want %q", opt, l, first)
		}
	}
	for k, v := range map[string]string{"firmware": "coreboot", "bootdev": "disk", "cipher": "-1", "cipher ": "3 "} {
		k = strings.TrimSpace(k)
		if _, err := New("ipmitool", map[string]string{"host": "h", "user": "u", "password_env": "FERRY_TEST_BMC_PW", k: v}, nil); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}

// A BMC that says "Up/On" and stays off fails On, with the state it saw.
func TestIPMIToolOnFailsWhenPowerStaysOff(t *testing.T) {
	bin, _ := fakeIPMITool(t, "Chassis Power is off")
	t.Setenv("FERRY_TEST_BMC_PW", "pw")
	d, _ := New("ipmitool", map[string]string{"host": "h", "user": "u", "password_env": "FERRY_TEST_BMC_PW", "path": bin}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := d.On(ctx)
	if err == nil || !strings.Contains(err.Error(), "power state still off, want on") {
		t.Fatalf("err = %v", err)
	}
}

func TestIPMIToolStatusOffAndGarbage(t *testing.T) {
	t.Setenv("FERRY_TEST_BMC_PW", "pw")
	for answer, want := range map[string]State{"Chassis Power is off": StateOff, "Error: Unable to establish": StateUnknown} {
		bin, _ := fakeIPMITool(t, answer)
		d, _ := New("ipmitool", map[string]string{"host": "h", "user": "u", "password_env": "FERRY_TEST_BMC_PW", "path": bin}, nil)
		st, err := d.Status(context.Background())
		if st != want || (want == StateUnknown) != (err != nil) {
			t.Errorf("%q: %v, %v", answer, st, err)
		}
	}
}

func TestIPMIToolFailureNamesHostAndStderr(t *testing.T) {
	d := t.TempDir()
	bin := filepath.Join(d, "ipmitool")
	os.WriteFile(bin, []byte("#!/bin/sh\necho 'Unable to establish IPMI v2 / RMCP+ session' >&2\nexit 1\n"), 0o755)
	t.Setenv("FERRY_TEST_BMC_PW", "pw")
	drv, _ := New("ipmitool", map[string]string{"host": "bmc7", "user": "u", "password_env": "FERRY_TEST_BMC_PW", "path": bin}, nil)
	err := drv.On(context.Background())
	if err == nil || !strings.Contains(err.Error(), "power ipmitool on: host bmc7") || !strings.Contains(err.Error(), "RMCP+ session") {
		t.Fatalf("err = %v", err)
	}
}
