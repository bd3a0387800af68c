package localiot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/shadowsync/shadowsync/shadowstate"
)

// Store keeps the shadows of a local Device Shadow service. Load returns the zero
// shadow with the ID set for a shadow it has never seen; deleted shadows are saved too,
// so that a recreated shadow continues from the old version as on AWS. Implementations
// must be safe for concurrent use.
type Store interface {
	Load(id shadowstate.ID) (shadowstate.Shadow, error)
	Save(s shadowstate.Shadow) error
}

// MemoryStore is a Store that keeps shadows in memory only. The zero value is ready to
// use and safe for concurrent use.
type MemoryStore struct {
	mu      sync.RWMutex
	shadows map[shadowstate.ID]shadowstate.Shadow
}

// Load returns the stored shadow, or a never-created one.
func (m *MemoryStore) Load(id shadowstate.ID) (shadowstate.Shadow, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if s, ok := m.shadows[id]; ok {
		return s, nil
	}
	return shadowstate.Shadow{ID: id}, nil
}

// Save stores s, replacing any earlier version of it.
func (m *MemoryStore) Save(s shadowstate.Shadow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shadows == nil {
		m.shadows = make(map[shadowstate.ID]shadowstate.Shadow)
	}
	m.shadows[s.ID] = s
	return nil
}

// IDs returns the IDs of every shadow the store holds, deleted ones included.
func (m *MemoryStore) IDs() []shadowstate.ID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids := make([]shadowstate.ID, 0, len(m.shadows))
	for id := range m.shadows {
		ids = append(ids, id)
	}
	return ids
}

// DirStore is a Store that keeps every shadow in a JSON file under a directory, so that
// shadows and their versions survive a restart: <dir>/<thing>/shadow.json for the
// classic shadow and <dir>/<thing>/name/<shadow>.json for a named one. Each save
// replaces its file atomically before the service publishes the accepted reply. Reads
// are served from memory. It is safe for concurrent use.
type DirStore struct {
	dir string
	mem MemoryStore
}

// OpenDirStore creates dir if needed and loads every shadow saved in it. A file that
// cannot be read or decoded is an error naming the file, never silently skipped.
func OpenDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localiot: shadow store: %w", err)
	}
	d := &DirStore{dir: dir}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || filepath.Ext(path) != ".json" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var s shadowstate.Shadow
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if d.path(s.ID) != path {
			return fmt.Errorf("%s holds shadow %v, which belongs in %s", path, s.ID, d.path(s.ID))
		}
		return d.mem.Save(s)
	})
	if err != nil {
		return nil, fmt.Errorf("localiot: shadow store %s: %w", dir, err)
	}
	return d, nil
}

// Load returns the stored shadow, or a never-created one.
func (d *DirStore) Load(id shadowstate.ID) (shadowstate.Shadow, error) {
	return d.mem.Load(id)
}

// Save writes s to its file (through a temporary file and a rename, so a crash never
// leaves half a document) and then keeps it in memory.
func (d *DirStore) Save(s shadowstate.Shadow) error {
	if err := s.ID.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	path := d.path(s.ID)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".save-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp.Name()))
	}
	return d.mem.Save(s)
}

// IDs returns the IDs of every shadow the store holds, deleted ones included.
func (d *DirStore) IDs() []shadowstate.ID { return d.mem.IDs() }

func (d *DirStore) path(id shadowstate.ID) string {
	if id.Name == "" {
		return filepath.Join(d.dir, id.Thing, "shadow.json")
	}
	return filepath.Join(d.dir, id.Thing, "name", id.Name+".json")
}
