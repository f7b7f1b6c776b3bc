// Package auth gives a storeloop deployment its trust boundary, enforced by
// NATS itself: four roles (store, rulenode, client, admin) with least
// privilege, as NATS decentralized JWT users of one application account.
//
// [Init] writes a directory holding one standard NATS credentials file per
// role (store.creds, rulenode.creds, client.creds, admin.creds: usable with
// `nats --creds` and nats.UserCredentials) and server.conf, the server-side
// part (operator JWT, system account, a MEMORY resolver preloaded with the
// account JWTs). server.conf holds no secrets; the embedded server loads it
// with [LoadServer], an external nats-server with `include`. The account's
// and operator's seeds stay in DIR/keys, needed only to issue or revoke
// users ([Init] with [WithKeysFrom]).
//
// [Rules] is the permission table: the single source of the JWTs' permissions
// and of the documentation (`storeloop auth rules` prints it). Each role
// subscribes only under its own reply-inbox prefix ([InboxPrefix]), so no
// role reads another role's replies; [AddUser] issues more client and rule
// node users, each with an inbox prefix of its own ([UserInbox]).
// [ConnConfig.NATSOptions] gives a connection the right prefix from its
// credentials.
package auth
