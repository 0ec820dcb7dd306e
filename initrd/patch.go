package initrd

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"ferry/internal/atomicfile"
)

// PatchOptions tunes Patch.
type PatchOptions struct {
	// Compression of the new segment: None (default), Gzip or LZ4. It is
	// forced to None when the segment must go in front of the image's
	// compressed segments.
	Compression Compression
}

// PatchReport says what Patch did.
type PatchReport struct {
	InSize        int64
	OutSize       int64
	SegmentOffset int64 // where the new segment starts in OUT
	SegmentLength int64
	Compression   Compression // of the new segment
	// BeforeCompressed is set when an lz4-legacy segment (which the kernel
	// reads to the end of the image) made Patch put the new segment in
	// front of the first compressed segment instead of at the end. Files
	// of the original image with the same paths then win over the new ones.
	BeforeCompressed bool
	Entries          int // records written, with parent directories
}

// Patch writes inPath's bytes unchanged to outPath plus one new segment
// holding files and their parent directories. The input is never
// decompressed. Normally the segment is appended after zero padding to 4
// bytes; if an lz4-legacy segment may be present the segment goes, always
// uncompressed, after the leading uncompressed segments and before the
// first compressed one. Output is atomic: on failure outPath is not created.
func Patch(inPath, outPath string, files []File, opt PatchOptions) (*PatchReport, error) {
	in, err := os.Open(inPath)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", inPath)
	}
	if err := refuseSame(inPath, outPath, st); err != nil {
		return nil, err
	}
	layout, err := ReadLayout(in, st.Size(), inPath)
	if err != nil {
		return nil, err
	}
	if layout.PlainEnd == 0 && layout.FirstCompressed == st.Size() {
		return nil, &Error{File: inPath, Segment: -1, Entry: -1, Err: errors.New("no initramfs segment: the file is empty or only zero padding")}
	}
	rep := &PatchReport{InSize: st.Size(), Compression: opt.Compression}
	if opt.Compression != None && opt.Compression != Gzip && opt.Compression != LZ4 {
		return nil, fmt.Errorf("new segment compression %s: want none, gzip or lz4", opt.Compression)
	}
	// 0600: the new segment carries the lease's private key.
	err = atomicfile.WriteFunc(outPath, 0o600, func(out *os.File) error {
		return patchInto(out, in, layout, files, rep)
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// refuseSame stops Patch from truncating its own input.
func refuseSame(inPath, outPath string, in os.FileInfo) error {
	a, errA := filepath.Abs(inPath)
	b, errB := filepath.Abs(outPath)
	if errA == nil && errB == nil && a == b {
		return fmt.Errorf("output %s is the input", outPath)
	}
	if out, err := os.Stat(outPath); err == nil && os.SameFile(in, out) {
		return fmt.Errorf("output %s is the input %s", outPath, inPath)
	}
	return nil
}

func patchInto(out, in *os.File, l *Layout, files []File, rep *PatchReport) error {
	at := rep.InSize
	if l.LZ4After {
		at, rep.BeforeCompressed, rep.Compression = l.PlainEnd, true, None
	}
	// io.Copy from an *os.File (or an io.LimitedReader of one) to an
	// *os.File uses copy_file_range: the kernel copies, or even shares
	// extents, without the bytes passing through us.
	if _, err := io.Copy(out, io.LimitReader(in, at)); err != nil {
		return fmt.Errorf("copy %s: %w", in.Name(), err)
	}
	pad := align4(at) - at
	if _, err := out.Write(make([]byte, pad)); err != nil {
		return err
	}
	rep.SegmentOffset = at + pad
	n, entries, err := writeSegment(out, files, rep.Compression)
	if err != nil {
		return err
	}
	rep.SegmentLength, rep.Entries = n, entries
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s: %w", in.Name(), err)
	}
	rep.OutSize = rep.InSize + pad + n
	return nil
}

// writeSegment writes one archive of files, compressed with c, to w.
func writeSegment(w io.Writer, files []File, c Compression) (n int64, entries int, err error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	var zw io.WriteCloser
	switch c {
	case None:
	case Gzip:
		zw, _ = gzip.NewWriterLevel(bw, gzip.BestCompression)
	case LZ4:
		lw := lz4.NewWriter(bw)
		if err := lw.Apply(lz4.LegacyOption(true)); err != nil {
			return 0, 0, err
		}
		zw = lw
	case Zstd:
		// One frame at the best level: image A is fetched by iPXE, which
		// pays per byte, and the kernel unpacks zstd faster than gzip.
		z, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return 0, 0, err
		}
		zw = z
	default:
		return 0, 0, fmt.Errorf("cannot write %s segments", c)
	}
	var dst io.Writer = bw
	if zw != nil {
		dst = zw
	}
	_, entries, err = writeArchive(dst, files)
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	return cw.n, entries, err
}

// String summarises the report in one line for logs and the CLI.
func (r *PatchReport) String() string {
	where := "appended"
	if r.BeforeCompressed {
		where = "placed uncompressed before the first compressed segment (an lz4-legacy segment must stay last; same-path files of the original win)"
	}
	return fmt.Sprintf("%d entries in a %s segment of %d bytes at %#x, %s; %d -> %d bytes",
		r.Entries, r.Compression, r.SegmentLength, r.SegmentOffset, where, r.InSize, r.OutSize)
}
