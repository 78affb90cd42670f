/**
 * The `sftp` section of the configuration (core/config.ts): the SFTP upload
 * service (scripts/sftp/), OpenSSH's sshd with its own config and port in its
 * own mount namespace, where LDAP users log in with the SSH keys they added
 * through the API and land chrooted in `<images.uploadDir>/<user>/`.
 *
 * @example
 * ```ts
 * const sftp = SftpConfig.parse({ port: 2222 });
 * ```
 */
import { z } from "zod";

export const SftpConfig = z.object({
  /** `up` starts the service when identity (LDAP) is enabled and this is true. */
  enabled: z.boolean().default(true),
  /** sshd's port (its own, beside any sshd of the machine). */
  port: z.number().int().min(1).max(65535).default(2222),
  /** Addresses sshd listens on. */
  listen: z.array(z.string().min(1)).min(1).default(["::", "0.0.0.0"]),
  /**
   * sshd's and nslcd's files (host keys, configs, logs, nslcd's socket);
   * default `<stateDir>/sftp`. Host keys made here once are kept.
   */
  dir: z.string().min(1).optional(),
  /** LDAP users below this uidNumber are not seen (nslcd `nss_min_uid`). */
  minUid: z.number().int().min(1).default(1000),
  /**
   * The user that runs the AuthorizedKeysCommand. Deno's permissions
   * confine it to the etcd endpoints (`--allow-net` only: no files, no
   * subprocesses, no environment), so root is the default: an unprivileged
   * user such as `nobody` must be able to run Deno and read this checkout,
   * which a checkout under `/root` does not allow.
   */
  keysCommandUser: z.string().regex(/^[a-z_][a-z0-9_-]*$/).default("root"),
});
export type SftpConfig = z.infer<typeof SftpConfig>;
