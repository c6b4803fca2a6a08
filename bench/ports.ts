import { execFileSync } from 'node:child_process';

/** A free TCP port on 127.0.0.1 (asked of a short-lived child so it works synchronously). */
export function freePortSync(): number {
  const out = execFileSync(process.execPath, ['-e', "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"]);
  return Number(out.toString().trim());
}
