package localiot

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

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

// MemoryStore is a Store that keeps shadows in memory only, and a JobStore that keeps
// jobs likewise. The zero value is ready to use and safe for concurrent use.
type MemoryStore struct {
	mu      sync.RWMutex
	shadows map[shadowstate.ID]shadowstate.Shadow
	jobs    map[string]Job // by job ID; see jobs_store.go
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

// BoltStore is a Store that keeps every shadow in a bbolt database file, so that
// shadows, their versions and deleted shadows' versions survive a restart; as a
// JobStore it keeps the Jobs service's jobs in the same file. Each save
// is committed to disk (fsync) before Save returns, so before the service publishes
// the accepted reply. Reads are served from memory. It is safe for concurrent use;
// only one process may have the file open at a time.
type BoltStore struct {
	db  *bolt.DB
	mem MemoryStore
}

var shadowsBucket = []byte("shadows")

// OpenBoltStore opens (creating if needed) the database file at path and loads every
// shadow in it. An unreadable file, a record that does not decode, or a file another
// process holds open is an error naming the file.
func OpenBoltStore(path string) (*BoltStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("localiot: shadow store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("localiot: shadow store %s: in use by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("localiot: shadow store %s: %w", path, err)
	}
	b := &BoltStore{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		bucket, err := tx.CreateBucketIfNotExists(shadowsBucket)
		if err != nil {
			return err
		}
		return bucket.ForEach(func(k, v []byte) error {
			var s shadowstate.Shadow
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("record %q: %w", k, err)
			}
			if s.ID.String() != string(k) {
				return fmt.Errorf("record %q holds shadow %v", k, s.ID)
			}
			return b.mem.Save(s)
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("localiot: shadow store %s: %w", path, err)
	}
	return b, nil
}

// Load returns the stored shadow, or a never-created one.
func (b *BoltStore) Load(id shadowstate.ID) (shadowstate.Shadow, error) {
	return b.mem.Load(id)
}

// Save commits s to the database file and then keeps it in memory.
func (b *BoltStore) Save(s shadowstate.Shadow) error {
	if err := s.ID.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(shadowsBucket).Put([]byte(s.ID.String()), data)
	})
	if err != nil {
		return fmt.Errorf("localiot: save shadow %v: %w", s.ID, err)
	}
	return b.mem.Save(s)
}

// IDs returns the IDs of every shadow the store holds, deleted ones included.
func (b *BoltStore) IDs() []shadowstate.ID { return b.mem.IDs() }

// Close closes the database file. Saves after Close fail.
func (b *BoltStore) Close() error { return b.db.Close() }
