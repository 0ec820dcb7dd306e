package power

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// Drivers lists the names New accepts.
func Drivers() []string { return []string{"ipmitool", "manual", "qmp", "redfish"} }

// New makes the driver called name from its options, as the lender's
// inventory stores them. Unknown options are refused, so a typo does not
// silently fall back to a default. Options per driver:
//
//	ipmitool: host (required), user (required), password_env | password_file
//	          (exactly one), interface (lanplus), port, path (ipmitool),
//	          cipher (ipmitool -C; default: discovered), bootdev (pxe |
//	          none; pxe), firmware (bios | uefi; bios)
//	redfish:  endpoint (required, https://bmc), system (/redfish/v1/Systems/ID;
//	          default: the only member of /redfish/v1/Systems), user,
//	          password_env | password_file, ca_file, insecure (true|false),
//	          bootdev (pxe | none; pxe), firmware (bios | uefi; unset: the
//	          boot mode is left alone)
//	qmp:      socket (required), off (powerdown | stop | quit; powerdown)
//	manual:   confirm_file (required: the file a person creates to confirm),
//	          name (how the machine is called in the instructions)
//
// bootdev pxe makes On set a one-time network boot before powering on.
// log receives the manual driver's instructions and every driver's actions.
func New(name string, opts map[string]string, log *slog.Logger) (Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{driver: name, m: opts, used: map[string]bool{}}
	var d Driver
	var err error
	switch name {
	case "ipmitool":
		d, err = newIPMITool(&o, log)
	case "redfish":
		d, err = newRedfish(&o, log)
	case "qmp":
		d, err = newQMP(&o, log)
	case "manual":
		d, err = newManual(&o, log)
	default:
		return nil, &Error{Driver: name, Err: fmt.Errorf("unknown driver (want one of %s)", strings.Join(Drivers(), ", "))}
	}
	if err != nil {
		return nil, err
	}
	if err := o.unused(); err != nil {
		return nil, err
	}
	return d, nil
}

// options reads a driver's option map and remembers what was read.
type options struct {
	driver string
	m      map[string]string
	used   map[string]bool
}

func (o *options) get(key, def string) string {
	o.used[key] = true
	if v, ok := o.m[key]; ok && v != "" {
		return v
	}
	return def
}

func (o *options) required(key string) (string, error) {
	v := o.get(key, "")
	if v == "" {
		return "", o.errorf(key, "missing")
	}
	return v, nil
}

func (o *options) errorf(key, format string, a ...any) error {
	return &Error{Driver: o.driver, Option: key, Err: fmt.Errorf(format, a...)}
}

func (o *options) unused() error {
	var bad []string
	for k := range o.m {
		if !o.used[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return &Error{Driver: o.driver, Option: bad[0], Err: fmt.Errorf("unknown option(s) %s", strings.Join(bad, ", "))}
}

// maxSecret bounds a password file.
const maxSecret = 4096

// secret reads a password from the environment variable named by
// password_env or the file named by password_file: never from the option
// map itself, so inventories and logs never hold it. required says whether
// one of them must be given.
func (o *options) secret(required bool) (string, error) {
	env, file := o.get("password_env", ""), o.get("password_file", "")
	switch {
	case env != "" && file != "":
		return "", o.errorf("password_env", "give password_env or password_file, not both")
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", o.errorf("password_env", "environment variable %s is unset or empty", env)
		}
		return v, nil
	case file != "":
		return readSecretFile(o, file)
	case required:
		return "", o.errorf("password_env", "missing (or password_file)")
	}
	return "", nil
}

func readSecretFile(o *options, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", o.errorf("password_file", "%v", err)
	}
	defer f.Close()
	buf := make([]byte, maxSecret+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return "", o.errorf("password_file", "read %s: %v", path, err)
	}
	if n > maxSecret {
		return "", o.errorf("password_file", "%s is larger than %d bytes", path, maxSecret)
	}
	v := strings.TrimRight(string(buf[:n]), "\r\n")
	if v == "" {
		return "", o.errorf("password_file", "%s is empty", path)
	}
	return v, nil
}
