package tlog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tmysql "github.com/transparency-dev/tessera/storage/mysql"
)

// tesseraMySQLInterval is the smallest checkpoint interval Tessera's MySQL
// driver accepts; custody's publisher (mysqlDriver) publishes new sizes
// more often when Options.CheckpointInterval asks.
const tesseraMySQLInterval = time.Second

// MySQLPasswordEnv names the environment variable that holds the MySQL
// password when the URL has none (so it stays out of process listings).
const MySQLPasswordEnv = "CUSTODY_MYSQL_PASSWORD"

// IsMySQLURL reports whether s selects the MySQL storage (mysql://…).
func IsMySQLURL(s string) bool { return strings.HasPrefix(s, "mysql://") }

// ParseMySQLURL turns mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?socket=PATH]
// into a go-sql-driver DSN. The password, when the URL has none, comes
// from $CUSTODY_MYSQL_PASSWORD. Errors never repeat the password.
func ParseMySQLURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "mysql" {
		return "", errors.New("log storage URL is not mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") || u.User == nil || u.User.Username() == "" {
		return "", errors.New("log storage URL must name a user and a database: mysql://USER@HOST[:PORT]/DATABASE")
	}
	c := gomysql.NewConfig()
	c.User = u.User.Username()
	c.Passwd, _ = u.User.Password()
	if c.Passwd == "" {
		c.Passwd = os.Getenv(MySQLPasswordEnv)
	}
	c.DBName = db
	if sock := u.Query().Get("socket"); sock != "" {
		c.Net, c.Addr = "unix", sock
	} else {
		if u.Host == "" {
			return "", errors.New("log storage URL names no host")
		}
		c.Net, c.Addr = "tcp", u.Host
		if u.Port() == "" {
			c.Addr = u.Host + ":3306"
		}
	}
	c.Timeout = 10 * time.Second
	c.ReadTimeout, c.WriteTimeout = 30*time.Second, 30*time.Second
	return c.FormatDSN(), nil
}

// mysqlSchema creates Tessera's tables (the layout its MySQL driver reads:
// storage/mysql/schema.sql, compatibility version 1) and custody's own
// checkpoint history and cosignatures. Every statement is idempotent.
var mysqlSchema = []string{
	"CREATE TABLE IF NOT EXISTS Tessera (id TINYINT UNSIGNED NOT NULL, compatibilityVersion BIGINT UNSIGNED NOT NULL, PRIMARY KEY (id))",
	"INSERT IGNORE INTO Tessera (id, compatibilityVersion) VALUES (0, 1)",
	"CREATE TABLE IF NOT EXISTS Checkpoint (id TINYINT UNSIGNED NOT NULL, note MEDIUMBLOB NOT NULL, published_at BIGINT NOT NULL, PRIMARY KEY (id))",
	"CREATE TABLE IF NOT EXISTS TreeState (id TINYINT UNSIGNED NOT NULL, size BIGINT UNSIGNED NOT NULL, root TINYBLOB NOT NULL, PRIMARY KEY (id))",
	"CREATE TABLE IF NOT EXISTS Subtree (level TINYINT UNSIGNED NOT NULL, `index` BIGINT UNSIGNED NOT NULL, nodes MEDIUMBLOB NOT NULL, PRIMARY KEY (level, `index`))",
	"CREATE TABLE IF NOT EXISTS TiledLeaves (tile_index BIGINT UNSIGNED NOT NULL, size SMALLINT UNSIGNED NOT NULL, data LONGBLOB NOT NULL, PRIMARY KEY (tile_index))",
	// The empty tree, as Tessera's maybeInitTree would write it: done
	// here, under the lock, because replicas starting together on an empty
	// database deadlock in maybeInitTree (both lock the missing row's gap).
	"INSERT IGNORE INTO TreeState (id, size, root) VALUES (0, 0, UNHEX('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'))",
	"CREATE TABLE IF NOT EXISTS CustodyCheckpoints (size BIGINT UNSIGNED NOT NULL, note MEDIUMBLOB NOT NULL, PRIMARY KEY (size))",
	"CREATE TABLE IF NOT EXISTS CustodyCosignatures (size BIGINT UNSIGNED NOT NULL, name VARBINARY(255) NOT NULL, line BLOB NOT NULL, PRIMARY KEY (size, name))",
}

// openMySQL connects to the log's database and creates its tables, under
// the database's named lock custody-log-schema so that replicas starting
// together do not race on the DDL.
func openMySQL(ctx context.Context, rawURL string) (*sql.DB, error) {
	dsn, err := ParseMySQLURL(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't open log database: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	db.SetConnMaxLifetime(5 * time.Minute)
	if err := createMySQLSchema(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func createMySQLSchema(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("couldn't reach log database: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('custody-log-schema', 30)").Scan(&got); err != nil || got.Int64 != 1 {
		return fmt.Errorf("couldn't lock the log database's schema: %v", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK('custody-log-schema')")
	for _, q := range mysqlSchema {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("couldn't create the log's tables: %w", err)
		}
	}
	return nil
}

// newMySQLDriver returns Tessera's MySQL driver on db, with custody's
// checkpoint publisher beside it (mysqlDriver).
func newMySQLDriver(ctx context.Context, db *sql.DB, interval time.Duration, logger *slog.Logger) (tessera.Driver, error) {
	d, err := tmysql.New(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("couldn't open log storage: %w", err)
	}
	return &mysqlDriver{Storage: d, db: db, interval: interval, log: logger, kick: make(chan struct{}, 1)}, nil
}

// mysqlDriver is Tessera's MySQL driver with a second checkpoint
// publisher. Tessera's publishes on a ticker of the interval (at least 1
// s) and skips when the stored checkpoint is younger than the interval:
// a checkpoint published at a tick makes the next tick skip, so with one
// replica under load checkpoints came every 2 s, and an append (or the
// first append through another replica after one died) waited up to 2 s.
// custody's publisher runs when this replica integrated entries and
// publishes them as soon as the stored checkpoint is interval old, under
// the same row locks as Tessera's (the Checkpoint row, then TreeState), so
// that sizes published only grow, whichever replica publishes. Tessera's
// own loop still republishes every second or so.
type mysqlDriver struct {
	*tmysql.Storage
	db       *sql.DB
	interval time.Duration
	log      *slog.Logger
	kick     chan struct{}
	publish  func(ctx context.Context, size uint64, root []byte) ([]byte, error)
}

// Appender starts Tessera's appender and custody's publisher.
func (d *mysqlDriver) Appender(ctx context.Context, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	a, r, err := d.Storage.Appender(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	d.publish = opts.CheckpointPublisher(r, http.DefaultClient)
	add := a.Add
	a.Add = func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
		f := add(ctx, e)
		return func() (tessera.Index, error) {
			idx, err := f()
			if err == nil && !idx.IsDup {
				select {
				case d.kick <- struct{}{}:
				default:
				}
			}
			return idx, err
		}
	}
	go d.publishLoop(ctx)
	return a, r, nil
}

// publishLoop publishes what this replica integrated once it may.
func (d *mysqlDriver) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		}
		for {
			wait, err := d.publishIfDue(ctx)
			if err != nil {
				d.log.Warn("couldn't publish a checkpoint; Tessera's publisher retries", "err", err)
				break
			}
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// publishIfDue publishes a checkpoint of the integrated tree when it is
// larger than the stored one and that one is at least the interval old;
// it returns how long to wait when it is younger (0: published, or
// nothing new to publish).
func (d *mysqlDriver) publishIfDue(ctx context.Context) (time.Duration, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var note []byte
	var at int64
	err = tx.QueryRowContext(ctx, "SELECT note, published_at FROM Checkpoint WHERE id = 0 FOR UPDATE").Scan(&note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil // the first checkpoint is Tessera's
	}
	if err != nil {
		return 0, err
	}
	if age := time.Since(time.UnixMilli(at)); age < d.interval {
		return d.interval - age, nil
	}
	var size uint64
	var root []byte
	if err := tx.QueryRowContext(ctx, "SELECT size, root FROM TreeState WHERE id = 0 FOR UPDATE").Scan(&size, &root); err != nil {
		return 0, err
	}
	if published, err := noteSize(note); err == nil && size <= published {
		return 0, nil
	}
	cp, err := d.publish(ctx, size, root)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "REPLACE INTO Checkpoint (id, note, published_at) VALUES (0, ?, ?)", cp, time.Now().UnixMilli()); err != nil {
		return 0, err
	}
	return 0, tx.Commit()
}

// noteSize reads the tree size of a checkpoint note (its second line)
// without verifying it: only to compare with the tree state.
func noteSize(note []byte) (uint64, error) {
	lines := strings.SplitN(string(note), "\n", 3)
	if len(lines) < 3 {
		return 0, errors.New("malformed checkpoint")
	}
	return strconv.ParseUint(lines[1], 10, 64)
}

// trimmingReader answers partial tile and entry bundle reads with exactly
// the width asked for. Tessera's MySQL driver returns the widest stored
// tile or bundle (which may hold entries the published checkpoint does not
// commit to yet); tlog-tiles clients and the proof builder expect the
// partial width.
type trimmingReader struct{ tessera.LogReader }

func (r trimmingReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	t, err := r.LogReader.ReadTile(ctx, level, index, p)
	if err != nil {
		return nil, err
	}
	want := layout.TileWidth * 32
	if p > 0 {
		want = int(p) * 32
	}
	if len(t) < want {
		return nil, fs.ErrNotExist
	}
	return t[:want], nil
}

func (r trimmingReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	b, err := r.LogReader.ReadEntryBundle(ctx, index, p)
	if err != nil {
		return nil, err
	}
	n := int(p)
	if n == 0 {
		n = layout.EntryBundleWidth
	}
	return firstEntries(b, n)
}

// firstEntries cuts an entry bundle (each entry a big-endian uint16 length
// and its bytes) to its first n entries.
func firstEntries(b []byte, n int) ([]byte, error) {
	off := 0
	for range n {
		if len(b)-off < 2 {
			return nil, fs.ErrNotExist
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		if len(b)-off-2 < l {
			return nil, errors.New("stored entry bundle is truncated")
		}
		off += 2 + l
	}
	return b[:off], nil
}

// Settled waits for, and returns, a published checkpoint that commits to
// every entry the log had sequenced when it was called, whichever process
// sequenced them (an entry a replica sequenced just before it died is
// covered: some live replica publishes the next checkpoint; an entry a
// killed POSIX server sequenced is integrated by the next one).
func (l *Log) Settled(ctx context.Context) (*Checkpoint, error) {
	size, err := l.reader.NextIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the log's size: %w", err)
	}
	for {
		cp, err := l.Checkpoint(ctx)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if cp != nil && cp.Size >= size {
			return cp, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ready reports whether the log's storage answers (for a replica's
// readiness: a replica whose database is unreachable cannot append).
func (l *Log) Ready(ctx context.Context) error {
	if _, err := l.reader.IntegratedSize(ctx); err != nil {
		return fmt.Errorf("log storage: %w", err)
	}
	return nil
}
