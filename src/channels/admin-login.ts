/** The operator's login page: one field for the admin token, posted (never put in a URL). */
export function loginPage(next: string, problem?: string): string {
  const escaped = next.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Floodgate admin: sign in</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; display: grid; place-items: center; min-height: 100vh; background: #f4f5f7; color: #1d2330; }
  form { background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px #0002; width: min(22rem, 90vw); }
  h1 { font-size: 1.25rem; margin: 0 0 1rem; }
  label, input, button { display: block; width: 100%; box-sizing: border-box; }
  input { margin: .25rem 0 1rem; padding: .5rem; font: inherit; border: 1px solid #c4c8d0; border-radius: 4px; }
  button { padding: .6rem; font: inherit; border: 0; border-radius: 4px; background: #2457d6; color: #fff; cursor: pointer; }
  .problem { color: #b3261e; margin: 0 0 1rem; }
</style>
</head>
<body>
<form method="post" action="/v1/admin/session">
  <h1>Floodgate admin</h1>
  ${problem === undefined ? '' : `<p class="problem" role="alert">${problem}</p>`}
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <input type="hidden" name="next" value="${escaped}">
  <button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}
