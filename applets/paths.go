package applets

import (
	"ferry/api"
	"ferry/borrower"
	"ferry/lender"
	"ferry/pki"
)

// Where a site keeps its state and configuration unless told otherwise:
// the flag, else the environment variable, else these (the .deb's paths).
const (
	defaultLenderDir      = "/var/lib/ferry/lender"
	defaultBorrowerDir    = "/var/lib/ferry/borrower"
	defaultLenderConfig   = "/etc/ferry/lender.json"
	defaultBorrowerConfig = "/etc/ferry/borrower.json"
	defaultGatewayConfig  = "/etc/ferry/gateway.json"
)

// pathDefault is the environment variable's value, else def.
func (e *Env) pathDefault(variable, def string) string {
	if v := e.getenv(variable); v != "" {
		return v
	}
	return def
}

func (e *Env) lenderDir() string { return e.pathDefault("FERRY_LENDER_DIR", defaultLenderDir) }
func (e *Env) borrowerDir() string {
	return e.pathDefault("FERRY_BORROWER_DIR", defaultBorrowerDir)
}
func (e *Env) lenderConfig() string {
	return e.pathDefault("FERRY_LENDER_CONFIG", defaultLenderConfig)
}
func (e *Env) borrowerConfig() string {
	return e.pathDefault("FERRY_BORROWER_CONFIG", defaultBorrowerConfig)
}
func (e *Env) gatewayConfig() string {
	return e.pathDefault("FERRY_GATEWAY_CONFIG", defaultGatewayConfig)
}

// lenderAdminClient and borrowerAdminClient reach a manager's admin
// socket; when nothing answers there they say what to do: start the
// manager, or point at its directory.
func lenderAdminClient(dir string) *api.Client {
	return api.AdminClient(lender.AdminSocket(dir), "is `ferry lender serve` running? (another state directory: --dir DIR or $FERRY_LENDER_DIR)")
}

func borrowerAdminClient(dir string) *api.Client {
	return api.AdminClient(borrower.AdminSocket(dir), "is `ferry borrower serve` running? (another state directory: --dir DIR or $FERRY_BORROWER_DIR)")
}

// readSecret reads a private key from a file, or from stdin for "-": a
// key is never an argument (argv is visible to every user of the host).
func readSecret(env *Env, path string) ([]byte, error) {
	if path == "-" {
		return pki.ReadPEM(env.Stdin, "standard input")
	}
	return pki.ReadPEMFile(path)
}
