package applets

import (
	"fmt"

	"ferry/configfile"
)

// printCheck prints each problem of r on its own line (stdout), then a
// verdict; it fails (exit status 1) when any problem is an error.
func printCheck(env *Env, r *configfile.Report) error {
	errs := 0
	for _, p := range r.Problems {
		if !p.Warning {
			errs++
			fmt.Fprintln(env.Stdout, "error: "+p.String())
		} else {
			fmt.Fprintln(env.Stdout, p.String())
		}
	}
	if errs > 0 {
		return fmt.Errorf("%s: %d errors, %d warnings", r.Name, errs, len(r.Problems)-errs)
	}
	fmt.Fprintf(env.Stdout, "%s: ok, %d warnings\n", r.Name, len(r.Problems))
	return nil
}
