//go:build !linux

package ike

import "errors"

func (d *Daemon) prepareKernelSockets() error {
	return errors.New("ike: a kernel data plane needs Linux")
}
