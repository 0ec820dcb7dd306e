package power

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeIPMITool writes a stand-in for ipmitool that records its argv and
// IPMI_PASSWORD and answers status with answer.
func fakeIPMITool(t *testing.T, answer string) (path, record string) {
	d := t.TempDir()
	path, record = filepath.Join(d, "ipmitool"), filepath.Join(d, "record")
	script := "#!/bin/sh\necho \"argv: $*\" >> " + record + "\necho \"pw: $IPMI_PASSWORD\" >> " + record +
		"\ncase \"$*\" in *status) echo '" + answer + "';; esac\n"
	os.WriteFile(path, []byte(script), 0o755)
	return path, record
}

func TestIPMIToolPasswordNeverInArgvOrLog(t *testing.T) {
	bin, rec := fakeIPMITool(t, "Chassis Power is on")
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
	if st, err := d.Status(ctx); err != nil || st != StateOn {
		t.Fatalf("status %v, %v", st, err)
	}
	got, _ := os.ReadFile(rec)
	want := "argv: -I lanplus -H 10.42.9.9 -U admin -E chassis power on\npw: s3cret-pw\n" +
		"argv: -I lanplus -H 10.42.9.9 -U admin -E chassis power off\npw: s3cret-pw\n" +
		"argv: -I lanplus -H 10.42.9.9 -U admin -E chassis power reset\npw: s3cret-pw\n" +
		"argv: -I lanplus -H 10.42.9.9 -U admin -E chassis power status\npw: s3cret-pw\n"
	if string(got) != want {
		t.Fatalf("ipmitool saw:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(log.String(), "s3cret") {
		t.Fatalf("password in the log:\n%s", log.String())
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
