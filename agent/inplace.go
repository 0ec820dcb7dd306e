package agent

import (
	"fmt"

	"ferry/initrd"
	"ferry/internal/mapfile"
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
	bin, err := mapfile.MapPath(big.Src, 1<<32-1)
	if err != nil {
		return err
	}
	in, err := mapfile.MapPath(a.initrdPath, maxInitrd)
	if err != nil {
		mapfile.Unmap(bin)
		return err
	}
	release := func() { mapfile.Unmap(bin); mapfile.Unmap(in) }
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
