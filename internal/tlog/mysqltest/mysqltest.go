// Package mysqltest gives tests a database of their own on the MariaDB
// server scripts/mariadb starts (CUSTODY_TEST_MARIADB, exported by
// scripts/test); tests skip when it is unset.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
)

// Env names the environment variable holding the server's URL.
const Env = "CUSTODY_TEST_MARIADB"

// NewDatabase creates an empty database for t and returns its mysql://
// URL; the database is dropped when t ends. It skips t when Env is unset.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		t.Skip(Env + " is not set (scripts/test starts MariaDB; or: export " + Env + "=$(scripts/mariadb))")
	}
	u, err := url.Parse(base)
	if err != nil || u.User == nil {
		t.Fatalf("%s is not mysql://USER:PASSWORD@HOST:PORT/DB", Env)
	}
	c := gomysql.NewConfig()
	c.User = u.User.Username()
	c.Passwd, _ = u.User.Password()
	c.Net, c.Addr, c.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	name := "custody_" + strings.ToLower(rand.Text()[:12])
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { db.ExecContext(context.Background(), "DROP DATABASE "+name) })
	u.Path = "/" + name
	return u.String()
}
