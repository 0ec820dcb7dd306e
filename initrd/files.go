package initrd

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ParseAdd splits an "SRC:DST" argument at its last colon and cleans DST.
func ParseAdd(arg string) (src, dst string, err error) {
	i := strings.LastIndexByte(arg, ':')
	if i <= 0 || i == len(arg)-1 {
		return "", "", fmt.Errorf("%q: want SRC:DST", arg)
	}
	dst, err = CleanPath(arg[i+1:])
	if err != nil {
		return "", "", err
	}
	return arg[:i], dst, nil
}

// FilesFrom describes src, put at dst in an archive: a regular file, a
// symlink (kept as a link), or a directory with its whole tree. Other file
// types are refused.
func FilesFrom(src, dst string) ([]File, error) {
	dst, err := CleanPath(dst)
	if err != nil {
		return nil, err
	}
	st, err := os.Lstat(src)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		f, err := fileFrom(src, dst, st)
		return []File{f}, err
	}
	var files []File
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f, err := fileFrom(p, path.Join(dst, filepath.ToSlash(rel)), info)
		files = append(files, f)
		return err
	})
	return files, err
}

func fileFrom(src, dst string, st fs.FileInfo) (File, error) {
	f := File{Path: dst, Mode: st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	switch {
	case st.Mode().IsRegular():
		f.Src = src
	case st.IsDir():
		f.Mode |= fs.ModeDir
	case st.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return f, err
		}
		f.Link = link
	default:
		return f, fmt.Errorf("%s: %v is neither a regular file, a directory nor a symlink", src, st.Mode().Type())
	}
	return f, nil
}
