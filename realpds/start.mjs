// Starts the AT Protocol reference servers on loopback for tests:
// a did:plc directory (@did-plc/server, in-memory database) and a PDS
// (@atproto/pds, sqlite in a fresh temp directory). Creates the account
// alice.test, prints ONE line of JSON to stdout, then keeps running until
// its stdin closes or it gets SIGTERM/SIGINT/SIGHUP. Logs go to stderr
// (only when REALPDS_LOG is set, e.g. REALPDS_LOG=info); stdout carries
// nothing but the JSON line.
//
// Usage: node start.mjs   (run from anywhere; needs `npm ci` in this folder)

import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

// ---- quiet logs: must be set before the server packages are loaded ----
if (process.env.REALPDS_LOG) {
  process.env.LOG_ENABLED = 'true'
  process.env.LOG_LEVEL = process.env.REALPDS_LOG
  process.env.LOG_DESTINATION = '/dev/stderr'
} else {
  process.env.LOG_ENABLED = 'false'
}
// Nothing but the JSON line may reach stdout.
console.log = console.error
console.info = console.error
console.debug = console.error

const log = (...args) => console.error('[realpds]', ...args)

// ---- temp dir, removed on every kind of exit we can catch ----
const dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'realpds-'))
let cleaned = false
const cleanup = () => {
  if (cleaned) return
  cleaned = true
  try {
    fs.rmSync(dataRoot, { recursive: true, force: true })
  } catch (err) {
    log('could not remove', dataRoot, err?.message)
  }
}
process.on('exit', cleanup)
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => process.exit(0))
}
process.on('uncaughtException', (err) => {
  log('uncaught exception:', err?.stack ?? err)
  process.exit(1)
})
process.on('unhandledRejection', (err) => {
  log('unhandled rejection:', err?.stack ?? err)
  process.exit(1)
})

// ---- the parent holds our stdin; when it closes (parent gone), we go ----
process.stdin.on('end', () => process.exit(0))
process.stdin.on('close', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()

const { default: plcPkg } = await import('@did-plc/server')
const { default: pdsPkg } = await import('@atproto/pds')
const { PlcServer, Database: PlcDatabase } = plcPkg
const { PDS, envToCfg, envToSecrets, readEnv } = pdsPkg

// Makes an express app's listen(port) bind to 127.0.0.1 only.
const listenOnLoopback = (app, forcePort) => {
  const orig = app.listen
  app.listen = (port, ...rest) =>
    orig.call(app, forcePort ?? port, '127.0.0.1', ...rest)
}

const freeLoopbackPort = async () => {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address()
  await new Promise((resolve) => srv.close(resolve))
  return port
}

// ---- PLC directory: in-memory, on a port the kernel picks ----
const plc = PlcServer.create({ db: PlcDatabase.mock() })
listenOnLoopback(plc.app, 0)
const plcHttp = await plc.start()
const plcUrl = `http://127.0.0.1:${plcHttp.address().port}`

// ---- PDS: its config needs a concrete port (it becomes part of the
// public URL), so find a free one and retry if somebody takes it first ----
const jwtSecret = randomBytes(32).toString('hex')
const adminPassword = randomBytes(16).toString('hex')
const rotationKeyHex = randomBytes(32).toString('hex')

let pds
let pdsPort
for (let attempt = 1; ; attempt++) {
  pdsPort = await freeLoopbackPort()
  const dataDir = path.join(dataRoot, `pds-${attempt}`)
  fs.mkdirSync(path.join(dataDir, 'blocks'), { recursive: true })
  Object.assign(process.env, {
    PDS_PORT: String(pdsPort),
    PDS_HOSTNAME: 'localhost',
    PDS_DATA_DIRECTORY: dataDir,
    PDS_BLOBSTORE_DISK_LOCATION: path.join(dataDir, 'blocks'),
    PDS_JWT_SECRET: jwtSecret,
    PDS_ADMIN_PASSWORD: adminPassword,
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: rotationKeyHex,
    PDS_DID_PLC_URL: plcUrl,
    PDS_DEV_MODE: 'true',
    PDS_INVITE_REQUIRED: 'false',
    PDS_SERVICE_HANDLE_DOMAINS: '.test',
    PDS_CRAWLERS: '',
  })
  const env = readEnv()
  pds = await PDS.create(envToCfg(env), envToSecrets(env))
  listenOnLoopback(pds.app)
  try {
    await pds.start()
    break
  } catch (err) {
    if (err?.code !== 'EADDRINUSE' || attempt >= 5) throw err
    log(`port ${pdsPort} was taken, retrying`)
    await pds.destroy().catch(() => {})
  }
}
const url = `http://127.0.0.1:${pdsPort}`

// ---- the test account ----
const handle = 'alice.test'
const email = 'alice@example.test'
const password = `pw-${randomBytes(12).toString('hex')}`
const res = await fetch(`${url}/xrpc/com.atproto.server.createAccount`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ handle, email, password }),
})
const body = await res.json()
if (res.status !== 200) {
  throw new Error(`createAccount: ${res.status} ${JSON.stringify(body)}`)
}

process.stdout.write(
  JSON.stringify({
    url,
    plc_url: plcUrl,
    did: body.did,
    handle: body.handle,
    email,
    access_jwt: body.accessJwt,
    refresh_jwt: body.refreshJwt,
    jwt_secret: jwtSecret,
    admin_password: adminPassword,
    password,
    pid: process.pid,
  }) + '\n',
)
log(`ready: ${url} (plc ${plcUrl}), ${body.did}`)
