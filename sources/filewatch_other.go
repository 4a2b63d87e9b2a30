//go:build !linux

package sources

import "os"

// fileWatch gives no events outside Linux: the source polls.
type fileWatch struct{ wake chan struct{} }

func newFileWatch(string, bool) (*fileWatch, error) {
	return &fileWatch{wake: make(chan struct{})}, nil
}
func (w *fileWatch) polling() bool        { return true }
func (w *fileWatch) add(*os.File, fileID) {}
func (w *fileWatch) remove(fileID)        {}
func (w *fileWatch) close()               {}
