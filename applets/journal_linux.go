package applets

import (
	"fmt"
	"os"
	"syscall"
)

// underJournal says whether stderr is the journald stream systemd gave
// this process: $JOURNAL_STREAM holds that stream's "device:inode", and
// stderr must still be it (a child whose stderr was redirected is not).
func underJournal(getenv func(string) string, stderr *os.File) bool {
	js := getenv("JOURNAL_STREAM")
	if js == "" || stderr == nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(stderr.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
