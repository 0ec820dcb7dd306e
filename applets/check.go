package applets

import (
	"fmt"

	"ferry/configfile"
)

// printCheck prints each problem of r on its own line (stdout), then a
// verdict; it fails (exit status 1) when any problem is an error. Notes
// ("info: ") say how a site stands before its services run: no reason
// to worry, nor to refuse.
func printCheck(env *Env, r *configfile.Report) error {
	errs, warns, infos := 0, 0, 0
	for _, p := range r.Problems {
		switch {
		case p.IsError():
			errs++
			fmt.Fprintln(env.Stdout, "error: "+p.String())
		case p.Info:
			infos++
			fmt.Fprintln(env.Stdout, p.String())
		default:
			warns++
			fmt.Fprintln(env.Stdout, p.String())
		}
	}
	if errs > 0 {
		return fmt.Errorf("%s: %d errors, %d warnings", r.Name, errs, warns)
	}
	fmt.Fprintf(env.Stdout, "%s: ok, %d warnings%s\n", r.Name, warns, notes(infos))
	return nil
}

func notes(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return ", 1 note"
	}
	return fmt.Sprintf(", %d notes", n)
}
