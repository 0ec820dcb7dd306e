package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"ferry/initrd"
)

// inPlaceInitrd is initrd(B) patched without writing it: its own bytes
// and ferry's binary mapped from their files, ferry's other files in an
// archive in memory, handed to kexec_load as adjacent segments
// (initrd.PatchInPlace). Writing the 28 MB patched file was most of
// patch-b; the kernel copies the same bytes from the page cache instead.
type inPlaceInitrd struct {
	parts   [][]byte
	files   []initrd.File // for writePatched, should the load fail
	release func()        // unmaps the files
}

// patchInPlace prepares a.inPlace from files, of which BinPath (ferry
// itself, from /proc/self/exe) is the one passed through by its pages.
func (a *Agent) patchInPlace(files []initrd.File) error {
	var small []initrd.File
	var big *initrd.File
	for i := range files {
		if files[i].Path == BinPath && files[i].Src != "" {
			big = &files[i]
			continue
		}
		small = append(small, files[i])
	}
	if big == nil {
		return fmt.Errorf("no %s among the files to append", BinPath)
	}
	bin, unmapBin, err := mapRead(big.Src)
	if err != nil {
		return err
	}
	in, unmapIn, err := mapRead(a.initrdPath)
	if err != nil {
		unmapBin()
		return err
	}
	release := func() { unmapBin(); unmapIn() }
	parts, rep, err := initrd.PatchInPlace(in, a.initrdPath, small, initrd.File{Path: BinPath, Mode: big.Mode}, bin)
	if err != nil {
		release()
		return err
	}
	a.inPlace = &inPlaceInitrd{parts: parts, files: files, release: release}
	a.phaseBytes = rep.OutSize
	a.log.Info("patched initrd(B) in memory", "report", rep.String(), "parts", len(parts))
	return nil
}

// mapRead maps the file at p read-only and populated (see kexec.mapFile);
// the returned func unmaps it.
func mapRead(p string) ([]byte, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 || !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file with contents", p)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping %s: %w", p, err)
	}
	return b, func() { unix.Munmap(b) }, nil
}
