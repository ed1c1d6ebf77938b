// One vitest project per package (packages/<name>/vitest.config.ts).
// Unit projects need nothing but Node; the `e2e` project runs real Dovecot, PostgreSQL and MariaDB.
export default ["packages/*"]
