package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"stork.dev/stork/backup/engine/objstore"
)

// FormatVersion is the repository format this package writes by default
// (docs/repository-format.md). FormatS2 is the same format with data blobs compressed by S2
// instead of zstd (InitOptions.Compression): a version of its own, so that a reader that knows
// only format 1 refuses the repository rather than calls its blobs damaged.
const (
	FormatVersion = 1
	FormatS2      = 2
)

// Compression codecs of data blobs (Config.Compression). Indexes are zstd in every format.
const (
	CompressionZstd = "zstd" // zstd's fastest level: the default, smaller repositories
	CompressionS2   = "s2"   // S2 (Snappy's successor): about 1.5–3× zstd's speed, larger output
)

// Blob encodings: the first byte of a sealed blob's plaintext.
const (
	encodingRaw  = 0
	encodingZstd = 1
	encodingS2   = 2
)

// Config is a repository's settings, fixed at init and stored sealed in the config object.
type Config struct {
	Version int `json:"version"`
	// ID identifies the repository (random).
	ID string `json:"id"`
	// Chunker is the content-defined chunking algorithm and its sizes.
	Chunker ChunkerParams `json:"chunker"`
	// PackSize is the size a pack is closed at.
	PackSize int       `json:"packSize"`
	Created  time.Time `json:"created"`
	// Compression is the codec of data blobs: CompressionZstd (also when empty) or
	// CompressionS2.
	Compression string `json:"compression,omitempty"`
}

// ChunkerParams configure content-defined chunking.
type ChunkerParams struct {
	Algorithm string `json:"algorithm"`
	MinSize   int    `json:"minSize"`
	AvgSize   int    `json:"avgSize"`
	MaxSize   int    `json:"maxSize"`
	// Key keys the gear table (see masterKeys.Chunker); not stored in the config.
	Key []byte `json:"-"`
}

// DefaultChunker is what new repositories chunk with: keyed FastCDC averaging 1 MiB (see
// docs/performance.md for the measurements behind the choice).
var DefaultChunker = ChunkerParams{Algorithm: "fastcdc-v1.0.0", MinSize: 256 << 10, AvgSize: 1 << 20, MaxSize: 4 << 20}

// DefaultPackSize closes packs at 32 MiB: few objects per backup, bounded memory per uploader.
const DefaultPackSize = 32 << 20

// Repository is an opened backup repository in an object store.
type Repository struct {
	store *objstore.Store
	cfg   Config
	keys  *masterKeys
	c     *crypter

	zenc *zstd.Encoder
	zdec *zstd.Decoder
	// encoding is how new data blobs are compressed (Config.Compression).
	encoding byte

	mu    sync.RWMutex
	index *blobIndex
	// indexMemory is the index's memory budget (OpenOptions).
	indexMemory int64
	packs       []ID
	// packNum finds a pack's number in packs.
	packNum map[ID]uint32
	// treeSpans holds, by pack number, the range of the pack that holds its tree blobs.
	treeSpans map[uint32]span
	// doomed holds the numbers of packs marked for deletion by prune.
	doomed map[uint32]bool
	// indexDamage lists index files LoadIndex skipped because they are damaged.
	indexDamage []error
	// loadedFiles and loadedMarks are the index files and deletion marks read, for
	// RefreshIndex.
	loadedFiles, loadedMarks map[string]bool
	// prefetched holds the index files fetched while OpenWith derived the key.
	prefetched *prefetch

	bufs bufPool
	// rangeBufs recycles the buffers of pack reads.
	rangeBufs rangePool
	trees     treeCache
	// cache keeps sealed snapshot manifests on local disk, if OpenOptions.CacheDir is set.
	cache diskCache
	// snaps holds the snapshot manifests read by the last Snapshots call.
	snapMu sync.Mutex
	snaps  map[ID]*Snapshot
}

// IndexDamage lists the index files that were skipped when the index was loaded, because they
// are damaged. Run check to see every problem.
func (r *Repository) IndexDamage() []error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.indexDamage
}

// location is an indexed blob's place (blobindex.go says what one costs in memory).
type location struct {
	pack      uint32
	offset    uint32
	length    uint32
	rawLength uint32
	typ       BlobType
}

// InitOptions tune a new repository; zero values take the defaults.
type InitOptions struct {
	Chunker  ChunkerParams
	PackSize int
	// Compression is CompressionZstd (default) or CompressionS2.
	Compression string
}

// Init makes a new repository in the store, which must hold none yet.
func Init(ctx context.Context, store *objstore.Store, key UserKey, opts InitOptions) (*Repository, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if ok, err := store.Exists(ctx, "config"); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%s already holds a repository", store)
	}
	mk, err := newMasterKeys()
	if err != nil {
		return nil, err
	}
	cfg := Config{Version: FormatVersion, Chunker: opts.Chunker, PackSize: opts.PackSize, Created: time.Now().UTC()}
	switch opts.Compression {
	case "", CompressionZstd:
	case CompressionS2:
		cfg.Version, cfg.Compression = FormatS2, CompressionS2
	default:
		return nil, fmt.Errorf("compression %q: use %s or %s", opts.Compression, CompressionZstd, CompressionS2)
	}
	if cfg.Chunker.Algorithm == "" {
		cfg.Chunker = DefaultChunker
	}
	if cfg.PackSize == 0 {
		cfg.PackSize = DefaultPackSize
	}
	cfg.ID = randomHex(8)
	r, err := newRepository(store, cfg, mk)
	if err != nil {
		return nil, err
	}
	keyData, keyID, err := wrapKeys(mk, key)
	if err != nil {
		return nil, err
	}
	if _, err := store.PutNew(ctx, "keys/"+keyID.String(), keyData); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	// The config goes last: a repository whose init died half-way has no config and can be
	// initialised again.
	ok, err := store.PutNew(ctx, "config", r.c.seal(nil, plain))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: another process initialised a repository at the same time", store)
	}
	return r, nil
}

func newRepository(store *objstore.Store, cfg Config, mk *masterKeys) (*Repository, error) {
	c, err := newCrypter(mk.Encryption, mk.ID)
	if err != nil {
		return nil, err
	}
	// No zstd checksum: every blob is authenticated by AES-GCM and named by its hash.
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, err
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxBlobSize*2))
	if err != nil {
		return nil, err
	}
	cfg.Chunker.Key = mk.Chunker
	encoding := byte(encodingZstd)
	if cfg.Compression == CompressionS2 {
		encoding = encodingS2
	}
	return &Repository{store: store, cfg: cfg, keys: mk, c: c, zenc: zenc, zdec: zdec, encoding: encoding,
		index: newBlobIndex(0, store.TempFile), packNum: map[ID]uint32{}, treeSpans: map[uint32]span{}, doomed: map[uint32]bool{},
		loadedFiles: map[string]bool{}, loadedMarks: map[string]bool{}}, nil
}

// ErrNoRepository means the store holds no repository.
var ErrNoRepository = errors.New("no repository here: initialise one first (storkctl repo init)")

// Open opens the repository in the store with the user key and loads its index.
func Open(ctx context.Context, store *objstore.Store, key UserKey) (*Repository, error) {
	return OpenWith(ctx, store, key, OpenOptions{})
}

// OpenOptions tune an opened repository; zero values take the defaults.
type OpenOptions struct {
	// IndexMemory is how many bytes the blob index may take in memory before it spills to a
	// file in the store's staging directory (default: DefaultIndexMemory, or a quarter of the
	// container's memory limit if less).
	IndexMemory int64
	// CacheDir, if set, is a local directory of this repository's own where sealed snapshot
	// manifests are kept between runs (diskcache.go).
	CacheDir string
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, store *objstore.Store, key UserKey, opts OpenOptions) (*Repository, error) {
	// Fetched while the key is derived (prefetch.go).
	index := startPrefetch(ctx, store, "index/", indexPrefetchMax, nil)
	defer index.stop()
	cache := diskCache{opts.CacheDir}
	manifests := startPrefetch(ctx, store, "snapshots/", manifestsPrefetchMax, cache.has)
	defer manifests.stop()
	r, err := open(ctx, store, key)
	if err != nil {
		return nil, err
	}
	r.indexMemory, r.cache = opts.IndexMemory, cache
	index.wait()
	r.prefetched = index
	err = r.LoadIndex(ctx)
	r.prefetched = nil
	if err != nil {
		r.Close()
		return nil, err
	}
	manifests.stop() // what has not arrived yet is read when needed
	r.adoptSnapshots(manifests)
	return r, nil
}

// Verify opens the repository's configuration and keys without reading its index: enough to
// know that the store holds a repository and that the key opens it, at the cost of two small
// reads whatever the repository's size. It returns the repository's configuration.
func Verify(ctx context.Context, store *objstore.Store, key UserKey) (Config, error) {
	r, err := open(ctx, store, key)
	if err != nil {
		return Config{}, err
	}
	defer r.Close()
	return r.cfg, nil
}

func open(ctx context.Context, store *objstore.Store, key UserKey) (*Repository, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	sealedCfg, err := store.Get(ctx, "config")
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", store, ErrNoRepository)
	}
	if err != nil {
		return nil, err
	}
	var mk *masterKeys
	err = store.List(ctx, "keys/", func(o objstore.Object) error {
		data, err := store.Get(ctx, o.Key)
		if err != nil {
			return err
		}
		k, err := unwrapKeys(data, key)
		if errors.Is(err, ErrWrongKey) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", o.Key, err)
		}
		mk = k
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if mk == nil {
		return nil, fmt.Errorf("%s: %w", store, ErrWrongKey)
	}
	c, err := newCrypter(mk.Encryption, mk.ID)
	if err != nil {
		return nil, err
	}
	plain, err := c.open(nil, sealedCfg)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", store, err)
	}
	var cfg Config
	if err := json.Unmarshal(plain, &cfg); err != nil {
		return nil, fmt.Errorf("%s: decoding config: %w", store, err)
	}
	if (cfg.Version != FormatVersion || cfg.Compression != "") && (cfg.Version != FormatS2 || cfg.Compression != CompressionS2) {
		return nil, fmt.Errorf("%s: repository format %d (compression %q); this Stork reads formats %d (zstd) and %d (s2)",
			store, cfg.Version, cfg.Compression, FormatVersion, FormatS2)
	}
	return newRepository(store, cfg, mk)
}

var errStop = errors.New("stop")

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// Config returns the repository's settings.
func (r *Repository) Config() Config { return r.cfg }

// Store returns the object store the repository lives in.
func (r *Repository) Store() *objstore.Store { return r.store }

// Close releases the repository's resources (not the store).
func (r *Repository) Close() {
	r.zenc.Close()
	r.zdec.Close()
	r.rangeBufs.drop()
	r.mu.Lock()
	r.index.close()
	r.mu.Unlock()
}

// LoadIndex (re)reads every index file and deletion mark into memory. Blobs in packs marked
// for deletion stay readable but are not deduplicated against (see Has).
func (r *Repository) LoadIndex(ctx context.Context) error {
	// A prune replaces index files (new ones first, then the old are deleted): when one
	// vanishes while being read, its replacement may have been listed already or not, so the
	// whole index is read again.
	for attempt := 1; ; attempt++ {
		err := r.loadIndex(ctx)
		if !errors.Is(err, objstore.ErrNotFound) || attempt == 10 {
			return err
		}
	}
}

func (r *Repository) loadIndex(ctx context.Context) error {
	marks, err := r.gcMarks(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.index.close()
	r.index = newBlobIndex(r.indexMemory, r.store.TempFile)
	r.packs, r.packNum, r.treeSpans, r.doomed = nil, map[ID]uint32{}, map[uint32]span{}, map[uint32]bool{}
	r.indexDamage, r.loadedFiles, r.loadedMarks = nil, map[string]bool{}, map[string]bool{}
	for _, m := range marks {
		r.loadedMarks[m.key] = true
		for _, p := range m.Packs {
			r.doomed[r.packNumLocked(p)] = true
		}
	}
	r.mu.Unlock()
	return r.indexFiles(ctx, r.addIndexFile)
}

// addIndexFile adds one index file's packs to the index.
func (r *Repository) addIndexFile(key string, packs []IndexedPack, err error) error {
	var d *DamagedError
	if err != nil && !errors.As(err, &d) {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadedFiles[key] = true
	if err != nil {
		// Read what can be read: a backup then uploads again what the damaged file listed,
		// a restore names the blob it cannot find, check reports the file and prune refuses
		// to run.
		r.indexDamage = append(r.indexDamage, err)
		return nil
	}
	for _, p := range packs {
		r.addPackLocked(p.ID, p.Entries)
	}
	return nil
}

// RefreshIndex brings the index up to date cheaply: it reads only index files that appeared
// since it was loaded, unless a prune ran meanwhile (a deletion mark or an index file came or
// went), and then it reads everything again.
func (r *Repository) RefreshIndex(ctx context.Context) error {
	keys := func(prefix string) (map[string]bool, error) {
		m := map[string]bool{}
		err := r.store.List(ctx, prefix, func(o objstore.Object) error { m[o.Key] = true; return nil })
		return m, err
	}
	// Both listings at once, and the new index files read from this listing rather than a
	// third: each is a round trip to a cloud store (two fewer for every backup, which refreshes
	// after taking its lock; an unchanged backup of the standard dataset through 20 ms a
	// request, 5 alternated pairs on a busy machine: median 681 → 652 ms). Listed at once, the
	// two show what listing them in either order could; a changed mark or a loaded file gone
	// means a prune, and a listed file a prune deletes before it is read sends this to
	// LoadIndex, as before. A file another backup adds after the listing is missed, as it
	// would be a moment later: its blobs are uploaded again at worst.
	var marks, files map[string]bool
	var g errgroup.Group
	g.Go(func() (err error) { marks, err = keys("gc/"); return err })
	g.Go(func() (err error) { files, err = keys("index/"); return err })
	if err := g.Wait(); err != nil {
		return err
	}
	r.mu.RLock()
	same := len(marks) == len(r.loadedMarks)
	for k := range marks {
		same = same && r.loadedMarks[k]
	}
	for k := range r.loadedFiles {
		same = same && files[k]
	}
	var added []string
	for k := range files {
		if !r.loadedFiles[k] {
			added = append(added, k)
		}
	}
	r.mu.RUnlock()
	if !same {
		return r.LoadIndex(ctx)
	}
	err := r.readIndexFiles(ctx, added, r.addIndexFile)
	if errors.Is(err, objstore.ErrNotFound) {
		return r.LoadIndex(ctx) // a prune is replacing index files right now
	}
	return err
}

// indexFiles reads and decodes every index file, calling fn with each one's packs, or with the
// reason it cannot be read (a *DamagedError when its content is wrong). Files are read in
// parallel (a repository gains one per backup until a prune merges them); fn is called for one
// at a time, in no particular order.
func (r *Repository) indexFiles(ctx context.Context, fn func(key string, packs []IndexedPack, err error) error) error {
	var keys []string
	err := r.store.List(ctx, "index/", func(o objstore.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return err
	}
	return r.readIndexFiles(ctx, keys, fn)
}

// readIndexFiles is indexFiles for index files already listed.
func (r *Repository) readIndexFiles(ctx context.Context, keys []string, fn func(key string, packs []IndexedPack, err error) error) error {
	var mu sync.Mutex
	call := func(key string, packs []IndexedPack, err error) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(key, packs, err)
	}
	return forEach(ctx, keys, func(ctx context.Context, key string) error {
		sealed, ok := r.prefetched.take(key)
		if !ok {
			var err error
			if sealed, err = r.store.Get(ctx, key); err != nil {
				return call(key, nil, err)
			}
		}
		if id := contentID(sealed); !strings.HasSuffix(key, id.String()) {
			return call(key, nil, &DamagedError{Object: key, Detail: "its content hashes to " + id.String()})
		}
		packs, err := r.decodeIndex(sealed)
		if err != nil {
			return call(key, nil, &DamagedError{Object: key, Detail: err.Error()})
		}
		return call(key, packs, nil)
	})
}

// readConcurrency bounds the small objects (index files, snapshots) read at once: over S3
// each is a round trip.
const readConcurrency = 8

// forEach calls fn for every key, readConcurrency at a time, and stops at the first error.
func forEach(ctx context.Context, keys []string, fn func(ctx context.Context, key string) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(readConcurrency)
	for _, k := range keys {
		g.Go(func() error { return fn(ctx, k) })
	}
	return g.Wait()
}

// IndexedPack is one pack's entries in an index file.
type IndexedPack struct {
	ID      ID
	Entries []PackEntry
}

func (r *Repository) packNumLocked(pack ID) uint32 {
	n, ok := r.packNum[pack]
	if !ok {
		n = uint32(len(r.packs))
		r.packs = append(r.packs, pack)
		r.packNum[pack] = n
	}
	return n
}

// addPackLocked indexes a pack's blobs. A blob in several packs is located in one not marked
// for deletion, if there is one.
func (r *Repository) addPackLocked(pack ID, entries []PackEntry) {
	n := r.packNumLocked(pack)
	for _, e := range entries {
		if e.Type == TreeBlob {
			r.treeSpans[n] = r.treeSpans[n].add(e.Offset, e.Length)
		}
		if old, ok := r.index.get(e.ID); ok && r.doomed[n] && !r.doomed[old.pack] {
			continue
		}
		r.index.set(e.ID, location{pack: n, offset: e.Offset, length: e.Length, rawLength: e.RawLength, typ: e.Type})
	}
}

// encodeIndex seals an index file: per pack its ID and entries, zstd-compressed.
func (r *Repository) encodeIndex(packs []IndexedPack) []byte {
	var plain []byte
	plain = append(plain, byte(FormatVersion))
	for _, p := range packs {
		plain = append(plain, p.ID[:]...)
		plain = encodeEntries(plain, p.Entries)
	}
	return r.c.seal(nil, r.zenc.EncodeAll(plain, nil))
}

func (r *Repository) decodeIndex(sealed []byte) ([]IndexedPack, error) {
	compressed, err := r.c.open(nil, sealed)
	if err != nil {
		return nil, err
	}
	plain, err := r.zdec.DecodeAll(compressed, nil)
	if err != nil {
		return nil, fmt.Errorf("decompressing index: %w", err)
	}
	if len(plain) < 1 || plain[0] != FormatVersion {
		return nil, errors.New("index has an unknown format version")
	}
	plain = plain[1:]
	var packs []IndexedPack
	for len(plain) > 0 {
		if len(plain) < 32 {
			return nil, errors.New("index truncated")
		}
		var p IndexedPack
		copy(p.ID[:], plain)
		p.Entries, plain, err = decodeEntries(plain[32:], maxPackSize)
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", p.ID, err)
		}
		packs = append(packs, p)
	}
	return packs, nil
}

// Has reports whether a blob is in the index, outside packs marked for deletion: whether a
// writer may deduplicate against it.
func (r *Repository) Has(id ID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	l, ok := r.index.get(id)
	return ok && !r.doomed[l.pack]
}

// BlobCount is the number of indexed blobs.
func (r *Repository) BlobCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.index.len()
}

// Lookup returns where a blob is.
func (r *Repository) Lookup(id ID) (pack ID, e PackEntry, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	l, ok := r.index.get(id)
	if !ok {
		return ID{}, PackEntry{}, false
	}
	return r.packs[l.pack], PackEntry{Type: l.typ, ID: id, Offset: l.offset, Length: l.length, RawLength: l.rawLength}, true
}

// DamagedError names the object that holds data failing verification.
type DamagedError struct {
	Object string
	Detail string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("damaged object %s: %s", e.Object, e.Detail)
}

// LoadBlob reads, decrypts, decompresses and verifies one blob.
func (r *Repository) LoadBlob(ctx context.Context, id ID) ([]byte, error) {
	return r.LoadBlobInto(ctx, id, nil)
}

// LoadBlobInto is LoadBlob appending to dst, to reuse a buffer.
func (r *Repository) LoadBlobInto(ctx context.Context, id ID, dst []byte) ([]byte, error) {
	pack, e, ok := r.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("blob %s is not in the index", id)
	}
	sealed, err := r.readBlob(ctx, pack, e)
	if errors.Is(err, objstore.ErrNotFound) {
		// Prune may have moved the blob to a new pack (repacking) since the index was read.
		if lerr := r.LoadIndex(ctx); lerr != nil {
			return nil, lerr
		}
		if pack2, e2, ok := r.Lookup(id); ok && pack2 != pack {
			pack, e = pack2, e2
			sealed, err = r.readBlob(ctx, pack, e)
		}
	}
	if err != nil {
		return nil, err
	}
	return r.OpenBlob(packKey(pack), e, sealed, dst)
}

// readBlob reads a blob's sealed bytes: trees from the tree cache, unless their pack's tree
// span is too large to read whole.
func (r *Repository) readBlob(ctx context.Context, pack ID, e PackEntry) ([]byte, error) {
	if e.Type == TreeBlob {
		r.mu.RLock()
		s, ok := r.treeSpans[r.packNum[pack]]
		r.mu.RUnlock()
		if ok && s.end-s.start <= treeSpanMax && e.Offset >= s.start && e.Offset+e.Length <= s.end {
			data, err := r.trees.get(ctx, pack, s, func(ctx context.Context) ([]byte, error) {
				return r.store.GetRange(ctx, packKey(pack), int64(s.start), int64(s.end-s.start))
			})
			if err != nil {
				return nil, err
			}
			return data[e.Offset-s.start : e.Offset-s.start+e.Length], nil
		}
	}
	return r.store.GetRange(ctx, packKey(pack), int64(e.Offset), int64(e.Length))
}

// OpenBlob decrypts, decompresses and verifies a sealed blob read from object key, appending
// the plaintext to dst.
func (r *Repository) OpenBlob(key string, e PackEntry, sealed, dst []byte) ([]byte, error) {
	buf := r.bufs.get()
	defer r.bufs.put(buf)
	plain, err := r.c.open((*buf)[:0], sealed)
	if err != nil {
		return nil, &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s at offset %d: %v", e.ID, e.Offset, err)}
	}
	*buf = plain
	start := len(dst)
	switch {
	case len(plain) == 0:
		return nil, &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s is empty", e.ID)}
	case plain[0] == encodingRaw:
		dst = append(dst, plain[1:]...)
	case plain[0] == encodingZstd:
		if dst, err = r.zdec.DecodeAll(plain[1:], dst); err != nil {
			return nil, &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s: decompressing: %v", e.ID, err)}
		}
	case plain[0] == encodingS2:
		if dst, err = decodeS2(dst, plain[1:], e.RawLength); err != nil {
			return nil, &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s: decompressing: %v", e.ID, err)}
		}
	default:
		return nil, &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s: unknown encoding %d", e.ID, plain[0])}
	}
	if uint32(len(dst)-start) != e.RawLength || r.c.blobID(dst[start:]) != e.ID {
		return nil, &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s: content does not match its ID", e.ID)}
	}
	return dst, nil
}

// sealBlob compresses data unless that saves under 1/32, and seals it, into a buffer of the
// pool that the caller puts back.
func (r *Repository) sealBlob(data []byte) *[]byte {
	payload := r.bufs.get()
	defer r.bufs.put(payload)
	buf := append((*payload)[:0], r.encoding)
	if r.incompressible(data) {
		buf = append(buf[:0], encodingRaw)
	}
	switch buf[0] {
	case encodingS2:
		buf = encodeS2(buf, data)
	case encodingZstd:
		buf = r.zenc.EncodeAll(data, buf)
	}
	if buf[0] == encodingRaw || len(buf)-1 > len(data)-len(data)/32 {
		buf = append(append(buf[:0], encodingRaw), data...)
	}
	*payload = buf
	sealed := r.bufs.get()
	*sealed = r.c.seal((*sealed)[:0], buf)
	return sealed
}

// encodeS2 appends data in S2's block format to buf, encoded in place into buf's spare capacity.
func encodeS2(buf, data []byte) []byte {
	n := s2.MaxEncodedLen(len(data))
	buf = slices.Grow(buf, n)
	return buf[:len(buf)+len(s2.Encode(buf[len(buf):len(buf)+n], data))]
}

// Blobs of at least sampleFrom bytes are sampled before being compressed: three windows of
// sampleWindow bytes (start, middle, end) are compressed, and if they do not shrink by
// sampleGain the blob is stored as it is. Compressing incompressible data (media, compressed
// archives and database pages, encrypted files) costs as much CPU as compressing text and gains
// nothing: the 8 GiB random file of docs/performance.md backed up in 21.7 s with it, at 1.4×
// the copy floor. The samples cost 2% of a compressible chunk's compression. Data whose
// redundancy the samples miss is stored uncompressed (larger, never wrong).
const (
	sampleFrom   = 128 << 10
	sampleWindow = 8 << 10
	sampleGain   = 0.97
)

// incompressible says whether data's samples do not compress.
func (r *Repository) incompressible(data []byte) bool {
	if len(data) < sampleFrom {
		return false
	}
	sp, op := r.bufs.get(), r.bufs.get()
	defer r.bufs.put(sp)
	defer r.bufs.put(op)
	sample := (*sp)[:0]
	for _, off := range []int{0, len(data)/2 - sampleWindow/2, len(data) - sampleWindow} {
		sample = append(sample, data[off:off+sampleWindow]...)
	}
	var out []byte
	if r.encoding == encodingS2 {
		out = encodeS2((*op)[:0], sample)
	} else {
		out = r.zenc.EncodeAll(sample, (*op)[:0])
	}
	*sp, *op = sample, out
	return float64(len(out)) > sampleGain*float64(len(sample))
}

// decodeS2 appends the S2 block src, which the index says decodes to want bytes, to dst.
func decodeS2(dst, src []byte, want uint32) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n != int(want) {
		return nil, fmt.Errorf("decodes to %d bytes, the index says %d", n, want)
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	out, err := s2.Decode(dst[start:], src)
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("decoded %d bytes, expected %d", len(out), n)
	}
	if n > 0 && &out[0] != &dst[start] { // s2 decodes in place when dst has room; be sure
		copy(dst[start:], out)
	}
	return dst, nil
}

// bufPool recycles blob-sized buffers: allocating a fresh MiB for every chunk made the garbage
// collector clear memory for a third of a backup's CPU time.
type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	buf := make([]byte, 0, 1<<20)
	return &buf
}

func (b *bufPool) put(buf *[]byte) {
	if cap(*buf) <= maxBlobSize+1024 {
		b.p.Put(buf)
	}
}

// putJSON seals v as JSON under prefix/ID, where ID is the BLAKE3-256 of the sealed bytes,
// written once. It returns the sealed bytes too.
func (r *Repository) putJSON(ctx context.Context, prefix string, v any) (ID, []byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return ID{}, nil, err
	}
	sealed := r.c.seal(nil, plain)
	id := contentID(sealed)
	_, err = r.store.PutNew(ctx, prefix+id.String(), sealed)
	return id, sealed, err
}

// getJSON reads a sealed JSON object and decodes it into v, verifying its name; it returns the
// sealed bytes too.
func (r *Repository) getJSON(ctx context.Context, key string, id ID, v any) (sealed []byte, err error) {
	if sealed, err = r.store.Get(ctx, key); err != nil {
		return nil, err
	}
	return sealed, r.decodeJSON(key, id, sealed, v)
}

// decodeJSON checks the object key against its name id, opens it and decodes it into v.
func (r *Repository) decodeJSON(key string, id ID, sealed []byte, v any) error {
	if contentID(sealed) != id {
		return &DamagedError{Object: key, Detail: "content does not match its name"}
	}
	plain, err := r.c.open(nil, sealed)
	if err != nil {
		return &DamagedError{Object: key, Detail: err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(v); err != nil {
		return &DamagedError{Object: key, Detail: "decoding: " + err.Error()}
	}
	return nil
}

// BlobID is the ID the repository gives plaintext data (a keyed hash): what a restored file's
// bytes are compared with to prove them equal to what was backed up.
func (r *Repository) BlobID(data []byte) ID { return r.c.blobID(data) }
