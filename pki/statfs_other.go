//go:build !linux

package pki

// inMemoryFS cannot tell outside Linux, so it answers "no": keys need
// --allow-disk there.
func inMemoryFS(dir string) (bool, string, error) {
	return false, "unknown (not Linux)", nil
}
