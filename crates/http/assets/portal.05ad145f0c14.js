import{initAll}from"./nhsuk-frontend.ac4d3c251bdf.js";document.body.classList.add("js-enabled","nhsuk-frontend-supported");initAll();
