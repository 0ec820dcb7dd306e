// Package svctest holds tests only: the built ferry binary's servers
// (lender, borrower, gateway) as systemd drives them, as processes of
// their own: a notify socket for sd_notify, SIGHUP for `systemctl
// reload`, SIGTERM for stop, and what an operator then sees in the log.
package svctest
