package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"stork.dev/stork/backup/engine/objstore"
)

// LockKind says what a session does to the repository.
type LockKind string

const (
	// BackupLock is held by a session that writes blobs and snapshots. Backups run
	// concurrently with each other and with prune; prune only waits for them before it
	// deletes (see gc.go).
	BackupLock LockKind = "backup"
	// PruneLock is held by prune: one prune runs at a time.
	PruneLock LockKind = "prune"
)

// A lock is a sealed JSON object locks/<random>. Objects are never rewritten, so a lock is
// refreshed by writing a new object and deleting the previous one. Restores and checks take no
// lock: they only read, and prune never deletes what a snapshot references.
const (
	lockRefresh = 5 * time.Minute
	// lockStale is when others consider a lock's holder dead (killed without unlocking).
	lockStale = 30 * time.Minute
	// lockSelfStale is when a holder that could not refresh stops trusting its own lock:
	// well before others may ignore it.
	lockSelfStale = 20 * time.Minute
	// clockSkew is the clock difference between hosts that lock comparisons tolerate.
	clockSkew = 5 * time.Minute
)

type lockRecord struct {
	Kind LockKind `json:"kind"`
	// Session names the session across refreshes; Start is when it began.
	Session   string    `json:"session"`
	Start     time.Time `json:"start"`
	Refreshed time.Time `json:"refreshed"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
}

func (l lockRecord) live(now time.Time) bool { return now.Sub(l.Refreshed) < lockStale }

func (l lockRecord) String() string {
	return fmt.Sprintf("%s session %s on %s (pid %d) since %s", l.Kind, l.Session, l.Host, l.PID, l.Start.Format(time.RFC3339))
}

// Lock is a held repository lock; it refreshes itself until Unlock.
type Lock struct {
	r   *Repository
	rec lockRecord
	// stopped ends at Unlock, and with it a refresh under way (which could otherwise hold
	// Unlock up for as long as lockRefresh on a store that does not answer).
	stopped context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu            sync.Mutex
	key           string
	lastRefreshed time.Time
}

// Lock takes a lock of the given kind. A prune lock is refused while another prune holds one.
// A backup lock refreshes the index afterwards: what a backup may deduplicate against must be
// read after its lock is visible, so that prune either waits for the backup or the backup sees
// prune's deletion marks (docs/repository-format.md, "Garbage collection").
func (r *Repository) Lock(ctx context.Context, kind LockKind) (*Lock, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	l := &Lock{r: r, rec: lockRecord{Kind: kind, Session: randomHex(8), Start: now, Refreshed: now, Host: host, PID: os.Getpid()}}
	l.stopped, l.stop = context.WithCancel(context.Background())
	if err := l.write(ctx); err != nil {
		return nil, fmt.Errorf("taking %s lock: %w", kind, err)
	}
	if kind == PruneLock {
		others, err := r.liveLocks(ctx)
		if err != nil {
			_ = l.Unlock(ctx)
			return nil, err
		}
		for _, o := range others {
			if o.Kind == PruneLock && o.Session != l.rec.Session {
				_ = l.Unlock(ctx)
				return nil, fmt.Errorf("another prune is running: %s", o)
			}
		}
	}
	if kind == BackupLock {
		if err := r.RefreshIndex(ctx); err != nil {
			_ = l.Unlock(ctx)
			return nil, err
		}
	}
	l.wg.Add(1)
	go l.refreshLoop()
	return l, nil
}

func (l *Lock) write(ctx context.Context) error {
	plain, err := json.Marshal(l.rec)
	if err != nil {
		return err
	}
	key := "locks/" + randomHex(16)
	if _, err := l.r.store.PutNew(ctx, key, l.r.c.seal(nil, plain)); err != nil {
		return err
	}
	l.mu.Lock()
	old := l.key
	l.key, l.lastRefreshed = key, l.rec.Refreshed
	l.mu.Unlock()
	if old != "" {
		return l.r.store.Delete(ctx, old)
	}
	return nil
}

func (l *Lock) refreshLoop() {
	defer l.wg.Done()
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stopped.Done():
			return
		case <-t.C:
			// A failed refresh is retried at the next tick; Valid reports when that went on
			// for too long.
			ctx, cancel := context.WithTimeout(l.stopped, lockRefresh)
			l.rec.Refreshed = time.Now().UTC()
			_ = l.write(ctx)
			cancel()
		}
	}
}

// Valid fails when the lock could not be refreshed for so long that a prune may have stopped
// honouring it; a backup checks it before writing its snapshot.
func (l *Lock) Valid() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if age := time.Since(l.lastRefreshed); age > lockSelfStale {
		return fmt.Errorf("the repository lock was last refreshed %s ago; a prune may have ignored it, so this session's work is not trusted", age.Round(time.Second))
	}
	return nil
}

// Unlock stops refreshing and deletes the lock.
func (l *Lock) Unlock(ctx context.Context) error {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	key := l.key
	l.mu.Unlock()
	if key == "" {
		return nil
	}
	return l.r.store.Delete(ctx, key)
}

// Release is Unlock for a defer, which runs after ctx may have been cancelled, under
// objstore.CleanupContext: deleting the lock is best effort once the holder's work has ended,
// as a lock no longer refreshed goes stale by itself (lockStale).
func (l *Lock) Release(ctx context.Context) error {
	ctx, cancel := objstore.CleanupContext(ctx)
	defer cancel()
	return l.Unlock(ctx)
}

// liveLocks returns the locks refreshed recently enough for their holders to be alive.
func (r *Repository) liveLocks(ctx context.Context) ([]lockRecord, error) {
	var out []lockRecord
	now := time.Now()
	err := r.store.List(ctx, "locks/", func(o objstore.Object) error {
		sealed, err := r.store.Get(ctx, o.Key)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil // released or refreshed meanwhile
		}
		if err != nil {
			return err
		}
		plain, err := r.c.open(nil, sealed)
		if err != nil {
			return &DamagedError{Object: o.Key, Detail: err.Error()}
		}
		var rec lockRecord
		if err := json.Unmarshal(plain, &rec); err != nil {
			return &DamagedError{Object: o.Key, Detail: "decoding: " + err.Error()}
		}
		if rec.live(now) {
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// staleLockKeys lists locks whose holders are dead, for prune to remove.
func (r *Repository) staleLockKeys(ctx context.Context) ([]string, error) {
	var keys []string
	err := r.store.List(ctx, "locks/", func(o objstore.Object) error {
		if strings.HasPrefix(o.Key, "locks/") && time.Since(o.ModTime) > lockStale+clockSkew {
			keys = append(keys, o.Key)
		}
		return nil
	})
	return keys, err
}
