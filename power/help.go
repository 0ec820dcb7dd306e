package power

// Help is each driver's options as `ferry lender server add --help`
// prints them: the same list New's doc gives, for operators.
func Help() string {
	return `power drivers and their --power-opt keys (unknown keys are refused):
  ipmitool  host=BMC (required), user=NAME (required),
            password_env=VAR | password_file=PATH (exactly one; never the
            password itself), interface=lanplus, port=623, path=ipmitool
  redfish   endpoint=https://bmc (required), system=/redfish/v1/Systems/ID
            (default: the only system), user=NAME, password_env=VAR |
            password_file=PATH, ca_file=PEM, insecure=true|false
  qmp       socket=PATH (required: QEMU's -qmp unix:PATH,server=on,wait=off),
            off=powerdown|stop|quit (default powerdown)
  manual    confirm_file=PATH (required: a person creates it to confirm),
            name=TEXT (how the instructions call the machine; default its
            MAC and ID)`
}
