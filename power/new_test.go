package power

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewRefusesUnknownDriver(t *testing.T) {
	_, err := New("wol", nil, nil)
	if err == nil || !strings.Contains(err.Error(), `power wol: unknown driver`) {
		t.Fatalf("err = %v", err)
	}
}

func TestNewNamesTheBadOption(t *testing.T) {
	t.Setenv("FERRY_TEST_BMC_PW", "pw")
	for _, c := range []struct {
		driver string
		opts   map[string]string
		want   string
	}{
		{"ipmitool", map[string]string{"user": "u", "password_env": "FERRY_TEST_BMC_PW"}, `power ipmitool (option "host"): missing`},
		{"ipmitool", map[string]string{"host": "h", "user": "u"}, `(option "password_env")`},
		{"ipmitool", map[string]string{"host": "h", "user": "u", "password_env": "FERRY_TEST_UNSET_VAR"}, `FERRY_TEST_UNSET_VAR is unset`},
		{"ipmitool", map[string]string{"host": "-oProxy", "user": "u", "password_env": "FERRY_TEST_BMC_PW"}, `(option "host"): "-oProxy" starts with '-'`},
		{"ipmitool", map[string]string{"host": "h", "user": "u", "password_env": "FERRY_TEST_BMC_PW", "pasword": "x"}, `(option "pasword"): unknown option`},
		{"redfish", map[string]string{"endpoint": "bmc.example"}, `(option "endpoint")`},
		{"redfish", map[string]string{"endpoint": "https://bmc", "insecure": "yes"}, `(option "insecure")`},
		{"redfish", map[string]string{"endpoint": "https://bmc", "system": "/Systems/1"}, `(option "system")`},
		{"qmp", map[string]string{}, `power qmp (option "socket"): missing`},
		{"qmp", map[string]string{"socket": "/x", "off": "yank"}, `(option "off")`},
		{"manual", map[string]string{}, `(option "confirm_file")`},
	} {
		_, err := New(c.driver, c.opts, nil)
		var pe *Error
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: err = %v, want %q", c.driver, c.opts, err, c.want)
		}
	}
}

func TestPasswordFileIsBoundedAndNotEmpty(t *testing.T) {
	d := t.TempDir()
	big, empty := filepath.Join(d, "big"), filepath.Join(d, "empty")
	os.WriteFile(big, make([]byte, maxSecret+1), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, f := range []string{big, empty, filepath.Join(d, "missing")} {
		if _, err := New("ipmitool", map[string]string{"host": "h", "user": "u", "password_file": f}, nil); err == nil || !strings.Contains(err.Error(), "password_file") {
			t.Errorf("%s: err = %v", f, err)
		}
	}
}
