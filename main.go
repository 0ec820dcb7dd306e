// Command ferry moves a lent bare-metal server under a borrower's control
// without touching its local disk. It is one static multicall binary: the
// applet is chosen by the basename of argv[0] (busybox-style symlinks), else
// by the first argument (`ferry APPLET ...`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"ferry/applets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := applets.Main(ctx, applets.StdEnv(), os.Args)
	stop()
	os.Exit(code)
}
