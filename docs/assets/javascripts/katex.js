// Typeset the maths that pymdownx.arithmatex (generic mode) wraps in .arithmatex elements, with the KaTeX
// copy vendored in docs/assets/katex (no CDN: the site renders offline). document$ is Material's page
// observable, so instant navigation re-renders too.
document$.subscribe(({ body }) => {
  for (const el of body.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
});
