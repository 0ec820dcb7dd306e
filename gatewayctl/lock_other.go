//go:build !linux

package gatewayctl

import (
	"context"
	"errors"
)

func lockFile(context.Context, string) (func(), error) { return nil, errors.ErrUnsupported }
