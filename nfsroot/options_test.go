package nfsroot

import (
	"net"
	"strings"
	"testing"
)

func TestMountOptions(t *testing.T) {
	client := net.ParseIP("10.9.0.2")
	for _, tc := range []struct {
		name                 string
		spec                 Spec
		client               net.IP
		fstype, source, data string
	}{
		{"v4.1 default", Spec{Server: "10.9.0.1", Path: "/"}, client,
			"nfs4", "10.9.0.1:/", "vers=4.1,addr=10.9.0.1,clientaddr=10.9.0.2"},
		{"v4.2 with user options and port", Spec{Server: "10.9.0.1", Path: "/srv/root", Version: "4.2", Options: "rsize=1048576,hard,timeo=600", Port: 2050}, client,
			"nfs4", "10.9.0.1:/srv/root", "vers=4.2,addr=10.9.0.1,clientaddr=10.9.0.2,port=2050,rsize=1048576,hard,timeo=600"},
		{"v4 without client address", Spec{Server: "10.9.0.1", Path: "/", Version: "4"}, nil,
			"nfs4", "10.9.0.1:/", "vers=4,addr=10.9.0.1"},
		{"v3 defaults: no statd, tcp", Spec{Server: "10.9.0.1", Path: "/export", Version: "3"}, client,
			"nfs", "10.9.0.1:/export", "vers=3,addr=10.9.0.1,nolock,proto=tcp,mountproto=tcp"},
		{"v3 one-port server (go-nfs)", Spec{Server: "10.9.0.1", Path: "/", Version: "3", Port: 2049, MountPort: 2049}, client,
			"nfs", "10.9.0.1:/", "vers=3,addr=10.9.0.1,nolock,proto=tcp,mountproto=tcp,mountport=2049,port=2049"},
		{"v6 server is bracketed in the source only", Spec{Server: "fd00::1", Path: "/"}, net.ParseIP("fd00::2"),
			"nfs4", "[fd00::1]:/", "vers=4.1,addr=fd00::1,clientaddr=fd00::2"},
	} {
		fstype, source, data, err := MountOptions(tc.spec, tc.client)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if fstype != tc.fstype || source != tc.source || data != tc.data {
			t.Errorf("%s: MountOptions = %q, %q, %q; want %q, %q, %q", tc.name, fstype, source, data, tc.fstype, tc.source, tc.data)
		}
	}
}

func TestMountOptionsRefuses(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Server: "nfs.example.com", Path: "/"}, "no resolver"},
		{Spec{Server: "", Path: "/"}, "not an IP address"},
		{Spec{Server: "10.9.0.1", Path: "export"}, "not absolute"},
		{Spec{Server: "10.9.0.1", Path: "/a\nb"}, "control character"},
		{Spec{Server: "10.9.0.1", Path: "/", Version: "2"}, "nfs version"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "ro,addr=10.0.0.66"}, "addr is set by ferry"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "nfsvers=3"}, "nfsvers is set by ferry"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "ro,,hard"}, "empty option"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "sec=sys\x00,ro"}, "not allowed"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "ro hard"}, "not allowed"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "context=\"a,b\""}, "not allowed"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "Ro"}, "not allowed in a name"},
		{Spec{Server: "10.9.0.1", Path: "/", Options: "timeo="}, "empty value"},
		{Spec{Server: "10.9.0.1", Path: "/", MountPort: 635}, "only NFSv3"},
		{Spec{Server: "10.9.0.1", Path: "/", Port: 70000}, "out of range"},
	} {
		_, _, _, err := MountOptions(tc.spec, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MountOptions(%+v) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func FuzzMountOptions(f *testing.F) {
	f.Add("10.9.0.1", "/", "4.1", "rsize=4096,hard")
	f.Add("fd00::1", "/x", "3", "")
	f.Fuzz(func(t *testing.T, server, path, version, options string) {
		_, source, data, err := MountOptions(Spec{Server: server, Path: path, Version: version, Options: options}, net.ParseIP("10.9.0.2"))
		if err != nil {
			return
		}
		// Exactly one addr= and one vers=, whatever the user options were.
		n := map[string]int{}
		for _, o := range strings.Split(data, ",") {
			name, _, _ := strings.Cut(o, "=")
			n[name]++
			if name == "" {
				t.Fatalf("empty option in %q", data)
			}
		}
		if n["addr"] != 1 || n["vers"] != 1 || n["nfsvers"] != 0 || n["clientaddr"] > 1 {
			t.Fatalf("options %q smuggle addr/vers (source %q)", data, source)
		}
		if strings.ContainsAny(data, " \t\n\x00\"'") {
			t.Fatalf("options %q carry separators", data)
		}
	})
}
