"""page.py

The chat page served at `/`: upload an image, ask a question, read the answer (plain HTML + JS that
calls `/v1/chat/completions` with the image as a data: URL).
"""

from __future__ import annotations

CHAT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>convllava chat</title>
<style>body{font-family:sans-serif;max-width:720px;margin:2em auto}#log div{margin:.5em 0}
img{max-width:240px;display:block}textarea{width:100%}</style></head>
<body><h1>convllava &middot; {{MODEL}}</h1>
<input type="file" id="image" accept="image/*"><img id="preview" alt="">
<textarea id="question" rows="3" placeholder="Ask about the image"></textarea>
<button id="send">Send</button><button id="reset">Reset</button>
<div id="log"></div>
<script>
let messages = [];
let imageUrl = null;
document.getElementById('image').onchange = (e) => {
  const file = e.target.files[0]; if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { imageUrl = reader.result; document.getElementById('preview').src = imageUrl; };
  reader.readAsDataURL(file);
};
document.getElementById('reset').onclick = () => { messages = []; document.getElementById('log').innerHTML = ''; };
document.getElementById('send').onclick = async () => {
  const text = document.getElementById('question').value.trim(); if (!text) return;
  const content = [];
  if (imageUrl) { content.push({type: 'image_url', image_url: {url: imageUrl}}); imageUrl = null; }
  content.push({type: 'text', text});
  messages.push({role: 'user', content});
  const log = document.getElementById('log');
  const q = document.createElement('div'); q.textContent = 'You: ' + text; log.appendChild(q);
  const a = document.createElement('div'); a.className = 'answer'; a.textContent = '...'; log.appendChild(a);
  const response = await fetch('/v1/chat/completions', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({model: '{{MODEL}}', messages, max_tokens: 128})});
  const data = await response.json();
  const answer = response.ok ? data.choices[0].message.content : 'Error: ' + data.error.message;
  a.textContent = 'Assistant: ' + answer;
  a.setAttribute('data-done', '1');
  if (response.ok) messages.push({role: 'assistant', content: answer});
};
</script></body></html>
"""
