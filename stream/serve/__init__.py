"""The live pipeline of `logad serve`: consume, decode, sessionize, batch, score, produce,
commit. `app.serve` is the consume loop; each step is a module beside it."""
