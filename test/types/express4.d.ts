// `express4` is npm:express@4 (a devDependency), so the Express guards are tested on both major
// versions. @types/express describes Express 5; the API the tests use is the same in 4.
declare module "express4" {
  import express from "express";
  export default express;
}
