package fsutil

import (
	"fmt"
	"io"
	"os"
)

// ReadFileLimited reads the file at path, refusing one larger than limit
// bytes without reading more than limit+1 of it.
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
